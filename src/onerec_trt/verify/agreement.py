"""Recommendation-level agreement between two ranked lists per user, and metric deltas with
paired bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np

from onerec_trt.metrics import overlap, per_user_recall_ndcg
from onerec_trt.verify.noninferiority import relative_change_ci


def agreement(ref: np.ndarray, cand: np.ndarray, k: int) -> dict[str, float]:
    """Mean overlap@k, Jaccard@k, exact-match rate and Spearman correlation of shared items."""
    ref, cand = ref[:, :k], cand[:, :k]
    jaccards, rhos = [], []
    for a, b in zip(ref, cand, strict=True):
        sa, sb = set(a[a >= 0].tolist()), set(b[b >= 0].tolist())
        inter = sa & sb
        jaccards.append(len(inter) / len(sa | sb) if sa | sb else 1.0)
        if len(inter) >= 2:
            pos_a = {x: i for i, x in enumerate(a.tolist())}
            pos_b = {x: i for i, x in enumerate(b.tolist())}
            shared = sorted(inter, key=pos_a.__getitem__)
            rank_b = np.argsort(np.argsort([pos_b[x] for x in shared]))
            rhos.append(float(np.corrcoef(np.arange(len(shared)), rank_b)[0, 1])
                        if len(shared) > 2 else (1.0 if rank_b[0] == 0 else -1.0))
    return {
        f"overlap@{k}": float(overlap(ref, cand, k).mean()),
        f"jaccard@{k}": float(np.mean(jaccards)),
        f"exact_match@{k}": float((ref == cand).all(axis=1).mean()),
        f"rank_correlation@{k}": float(np.mean(rhos)) if rhos else float("nan"),
    }


def metric_deltas(ref: np.ndarray, cand: np.ndarray, targets: np.ndarray, k: int,
                  resamples: int = 1000, seed: int = 0,
                  confidence: float = 0.95) -> dict[str, dict]:
    """Recall@k and NDCG@k of both, the relative difference and its paired bootstrap CI
    (``noninferiority.relative_change_ci``), and how many users' value changed."""
    out = {}
    per_ref = per_user_recall_ndcg(ref, targets, k)
    per_cand = per_user_recall_ndcg(cand, targets, k)
    for name, r, c in zip((f"recall@{k}", f"ndcg@{k}"), per_ref, per_cand, strict=True):
        ci = relative_change_ci(r, c, confidence, resamples, seed)
        out[name] = {
            "reference": float(r.mean()),
            "candidate": float(c.mean()),
            "relative_diff": ci.change,
            "relative_diff_ci": [ci.low, ci.high],
            "confidence": confidence,
            "users_changed": int((r != c).sum()),
        }
    return out

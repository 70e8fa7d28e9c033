"""Recommendation-level agreement between two ranked lists per user, and metric deltas with
paired bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np

from onerec_trt.metrics import overlap, per_user_recall_ndcg


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
                  resamples: int = 1000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Recall@k and NDCG@k of both, relative difference and a 95% paired bootstrap CI of it."""
    rng = np.random.default_rng(seed)
    n = len(targets)
    idx = rng.integers(0, n, size=(resamples, n))
    out = {}
    per_ref = per_user_recall_ndcg(ref, targets, k)
    per_cand = per_user_recall_ndcg(cand, targets, k)
    for name, r, c in zip((f"recall@{k}", f"ndcg@{k}"), per_ref, per_cand, strict=True):
        rm, cm = r.mean(), c.mean()
        rb, cb = r[idx].mean(1), c[idx].mean(1)
        rel = np.where(rb > 0, (cb - rb) / np.where(rb > 0, rb, 1), 0.0)
        out[name] = {
            "reference": float(rm),
            "candidate": float(cm),
            "relative_diff": float((cm - rm) / rm) if rm > 0 else 0.0,
            "relative_diff_ci95": [float(np.percentile(rel, 2.5)), float(np.percentile(rel, 97.5))],
            "users_changed": int((r != c).sum()),
        }
    return out

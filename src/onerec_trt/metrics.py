"""Recall@K and NDCG@K for leave-one-out (one target per user) over ranked item lists, and
overlap@K between two backends' lists (the one definition verify and bench share)."""

from __future__ import annotations

import numpy as np

KS = (5, 10)


def hit_ranks(ranked: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each user's target in ``ranked`` [U, K], or -1 when it is absent."""
    ranked = np.asarray(ranked)
    hits = ranked == np.asarray(targets)[:, None]
    found = hits.any(axis=1)
    return np.where(found, hits.argmax(axis=1), -1)


def per_user_recall_ndcg(ranked: np.ndarray, targets: np.ndarray,
                         k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each user's Recall@k (0/1) and NDCG@k (one relevant item: 1/log2(rank + 2) on a hit)."""
    ranked = np.asarray(ranked)
    if ranked.shape[1] < k:
        raise ValueError(f"need at least {k} ranked items per user, got {ranked.shape[1]}")
    ranks = hit_ranks(ranked[:, :k], targets)
    hit = ranks >= 0
    return hit.astype(float), np.where(hit, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)


def recall_ndcg(ranked: np.ndarray, targets: np.ndarray, ks: tuple[int, ...] = KS) -> dict:
    """Mean Recall@k and NDCG@k over users."""
    out = {}
    for k in ks:
        recall, ndcg = per_user_recall_ndcg(ranked, targets, k)
        out[f"recall@{k}"] = float(recall.mean()) if len(recall) else 0.0
        out[f"ndcg@{k}"] = float(ndcg.mean()) if len(ndcg) else 0.0
    return out


def overlap(reference: np.ndarray, candidate: np.ndarray, k: int) -> np.ndarray:
    """Each user's overlap@k: the share of the reference's top k items that the candidate's
    top k also holds. Dead beams (item -1) are not items: they never count as shared."""
    out = []
    for a, b in zip(np.asarray(reference)[:, :k], np.asarray(candidate)[:, :k], strict=True):
        out.append(len(set(a[a >= 0].tolist()) & set(b[b >= 0].tolist())) / k)
    return np.asarray(out, dtype=float)

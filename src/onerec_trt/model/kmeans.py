"""Seeded k-means (k-means++ init, Lloyd iterations) in numpy, chunked for large catalogues."""

from __future__ import annotations

import numpy as np

CHUNK = 16384


def nearest(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and squared distance to the nearest centroid for each row of ``x``."""
    c2 = (centroids**2).sum(1)
    idx = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), CHUNK):
        xs = x[start:start + CHUNK]
        d = c2[None, :] - 2.0 * xs @ centroids.T  # + |x|^2, constant per row
        idx[start:start + CHUNK] = d.argmin(1)
        dist[start:start + CHUNK] = d[np.arange(len(xs)), idx[start:start + CHUNK]] + (xs**2).sum(1)
    return idx, np.maximum(dist, 0.0)


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 25,
           fit_sample: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """Cluster rows of ``x`` into ``k`` groups -> (centroids [k, d], assignment [n]).

    Centroids are fitted on at most ``fit_sample`` rows (paper-scale catalogues), then every
    row is assigned. Empty clusters are re-seeded on the farthest points.
    """
    x = np.asarray(x, dtype=np.float32)
    fit = x if len(x) <= fit_sample else x[rng.choice(len(x), fit_sample, replace=False)]
    k_eff = min(k, len(fit))
    centroids = _plus_plus(fit, k_eff, rng)
    for _ in range(iters):
        assign, dist = nearest(fit, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, fit)
        counts = np.bincount(assign, minlength=k_eff)
        empty = np.flatnonzero(counts == 0)
        moved = sums[counts > 0] / counts[counts > 0, None]
        shift = float(np.abs(moved - centroids[counts > 0]).max()) if len(moved) else 0.0
        centroids[counts > 0] = moved
        if len(empty):
            centroids[empty] = fit[np.argsort(-dist)[: len(empty)]]
        elif shift < 1e-6:
            break
    if k_eff < k:  # fewer points than codes: unused codes get centroids far away
        centroids = np.concatenate([centroids, np.full((k - k_eff, x.shape[1]), 1e6, np.float32)])
    return centroids, nearest(x, centroids)[0]


def _plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding on a candidate subsample; plain random seeding above 1024 codes."""
    if k > 1024:
        return x[rng.choice(len(x), k, replace=False)].copy()
    cand = x if len(x) <= 20 * k else x[rng.choice(len(x), 20 * k, replace=False)]
    centroids = np.empty((k, x.shape[1]), dtype=np.float32)
    centroids[0] = cand[rng.integers(len(cand))]
    d2 = ((cand - centroids[0]) ** 2).sum(1)
    for i in range(1, k):
        total = d2.sum()
        j = rng.choice(len(cand), p=d2 / total) if total > 0 else rng.integers(len(cand))
        centroids[i] = cand[j]
        d2 = np.minimum(d2, ((cand - cand[j]) ** 2).sum(1))
    return centroids

"""The measurement plan and its arithmetic: alternating order, percentiles, paired ratios.

Why alternate: on a shared machine the load drifts over seconds. Timing backend A for a minute
and then backend B measures the drift as much as the backends. Here every repetition runs each
backend once, back to back, and the order flips on every other repetition (A B, B A, A B, ...),
so a slow patch of time hits both sides of a pair. A pair's ratio is the median of the
per-repetition ratios (each formed from two calls a few milliseconds apart), not a ratio of two
medians taken minutes apart.
"""

from __future__ import annotations

import numpy as np

from onerec_trt.metrics import overlap

# FP8 / BF16 pairs that can be formed when both backends ran: (fp8 backend, bf16 backend)
PAIRS = (("ort-fp8", "ort-bf16"), ("ort-plugins-fp8", "ort-plugins-bf16"),
         ("trt-fp8", "trt-bf16"), ("trt-plugins-fp8", "trt-plugins-bf16"))


def alternating_order(names: list[str], rep: int) -> list[str]:
    """Backends in the order repetition ``rep`` runs them: forward on even, reversed on odd."""
    return list(names) if rep % 2 == 0 else list(reversed(names))


def latency_summary(seconds: list[float], batch: int) -> dict:
    """p50/p99/mean/min latency (ms) and throughput (users/s at the median latency).

    p99 is numpy's linear-interpolated percentile: with fewer than 100 samples it lies between
    the two slowest calls (the maximum when there are fewer than two).
    """
    x = np.asarray(seconds, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no latency samples")
    p50 = float(np.percentile(x, 50))
    return {"batch": batch, "samples": int(x.size),
            "p50_ms": p50 * 1e3, "p99_ms": float(np.percentile(x, 99)) * 1e3,
            "mean_ms": float(x.mean()) * 1e3, "min_ms": float(x.min()) * 1e3,
            "throughput_users_per_s": batch / p50 if p50 > 0 else None}


def paired_ratio(numerator: list[float], denominator: list[float]) -> dict:
    """Ratio of two backends' latencies from calls of the same repetitions (index-aligned).

    ``latency_ratio`` is the median of the per-repetition ratios; ``throughput_ratio`` is its
    inverse (users/s of the numerator backend over the denominator's).
    """
    a, b = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    if a.size != b.size or a.size == 0:
        raise ValueError(f"paired ratio needs equal, non-empty samples ({a.size} vs {b.size})")
    r = a / b
    median = float(np.median(r))
    return {"latency_ratio": median, "throughput_ratio": 1.0 / median,
            "ratio_min": float(r.min()), "ratio_max": float(r.max()),
            "ratio_q25": float(np.percentile(r, 25)), "ratio_q75": float(np.percentile(r, 75)),
            "repetitions": int(r.size)}


def form_pairs(timings: dict[str, dict[int, list[float]]]) -> list[dict]:
    """Every FP8/BF16 pair whose two backends both have samples at a batch size."""
    pairs = []
    for fp8, bf16 in PAIRS:
        if fp8 not in timings or bf16 not in timings:
            continue
        batches = sorted(set(timings[fp8]) & set(timings[bf16]))
        by_batch = {b: paired_ratio(timings[fp8][b], timings[bf16][b]) for b in batches
                    if len(timings[fp8][b]) == len(timings[bf16][b]) and timings[fp8][b]}
        if by_batch:
            pairs.append({"fp8": fp8, "bf16": bf16, "by_batch": by_batch})
    return pairs


def agreement(ref_items, ref_scores, items, scores) -> dict:
    """Exact top-K match, overlap@K and the median |score difference| of two backends' outputs
    for the same request. The same computation in two renderings gives overlap near 1 and score
    differences at the rounding level; the exact order may differ where two items' scores are
    within one rounding step."""
    ref_items, items = np.asarray(ref_items), np.asarray(items)
    shared = float(overlap(ref_items, items, ref_items.shape[1]).mean())
    diff = np.abs(np.asarray(ref_scores, np.float64) - np.asarray(scores, np.float64))
    finite = diff[np.isfinite(diff) & (diff < 1e29)]
    return {"exact_match": exact_match(ref_items, items), "overlap": shared,
            "score_abs_diff_median": float(np.median(finite)) if finite.size else None}


def exact_match(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Share of users whose item lists are identical, in order."""
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.shape != candidate.shape:
        return 0.0
    return float((reference == candidate).all(axis=1).mean())

"""Distribution statistics of one tensor, and summaries over a model's layers.

Definitions (computed in fp32; torch's CPU sums are pairwise, so accurate to ~1e-7):
- ``kurtosis``: Pearson's, E[(x - mean)^4] / var^2 (a Gaussian gives 3; heavy tails give more);
- ``beyond_6sigma``: share of values with |x - mean| > 6 std (a Gaussian: about 2e-9);
- ``channel_absmax_ratio``: max over channels of the channel's absmax, divided by the median
  channel absmax (outlier channels make it large). Channels: weights' output rows, activations'
  features (the last axis).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from onerec_trt.analysis.fp8 import round_trip_errors


def tensor_stats(x: torch.Tensor, channel_axis: int) -> dict:
    """Statistics and FP8 E4M3 round-trip errors of ``x`` (channels along ``channel_axis``)."""
    x = x.detach().float()
    n = x.numel()
    mean = float(x.sum()) / n
    centred = x - mean
    sq = centred.square()
    var = float(sq.sum()) / n
    std = math.sqrt(var)
    # standardized before the 4th power, so wild tensors cannot overflow fp32
    kurt = float((centred / std).pow(4).sum()) / n if var > 0 else math.nan
    axis = channel_axis % x.dim()
    channel_absmax = x.abs().amax(dim=[d for d in range(x.dim()) if d != axis])
    median_channel = float(channel_absmax.median())
    return {
        "shape": list(x.shape),
        "numel": int(n),
        "absmax": float(x.abs().max()),
        "mean": mean,
        "variance": var,
        "std": std,
        "kurtosis": kurt,
        "beyond_6sigma": float((centred.abs() > 6 * std).sum()) / n if std > 0 else 0.0,
        "channel_absmax_ratio": (float(channel_absmax.max()) / median_channel
                                 if median_channel > 0 else math.inf),
        "fp8": round_trip_errors(x, axis),
    }


def summarize(records: list[dict]) -> dict:
    """Max/median of the per-layer statistics (the numbers the comparison reads)."""
    if not records:
        return {}

    def col(get) -> np.ndarray:
        return np.array([get(r) for r in records], dtype=np.float64)

    var, absmax = col(lambda r: r["variance"]), col(lambda r: r["absmax"])
    kurt = col(lambda r: r["kurtosis"])
    pt = col(lambda r: r["fp8"]["per_tensor"]["sqnr_db"])
    pc = col(lambda r: r["fp8"]["per_channel"]["sqnr_db"])
    return {
        "layers": len(records),
        "variance_max": float(var.max()), "variance_median": float(np.median(var)),
        "absmax_max": float(absmax.max()), "absmax_median": float(np.median(absmax)),
        "kurtosis_median": float(np.nanmedian(kurt)), "kurtosis_max": float(np.nanmax(kurt)),
        "beyond_6sigma_max": float(col(lambda r: r["beyond_6sigma"]).max()),
        "channel_absmax_ratio_max": float(col(lambda r: r["channel_absmax_ratio"]).max()),
        "sqnr_per_tensor_min": float(pt.min()), "sqnr_per_tensor_median": float(np.median(pt)),
        "sqnr_per_channel_min": float(pc.min()),
    }


def value_sample(tensors: list[torch.Tensor], count: int, seed: int = 0) -> np.ndarray:
    """A seeded sample of ``count`` values pooled over tensors (for the histograms), float32."""
    flat = torch.cat([t.detach().float().reshape(-1) for t in tensors])
    if flat.numel() > count:
        g = torch.Generator().manual_seed(seed)
        flat = flat[torch.randint(flat.numel(), (count,), generator=g)]
    return flat.numpy()

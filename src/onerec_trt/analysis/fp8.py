"""FP8 E4M3 round trips: how much a tensor (and a GEMM) loses when it is stored in FP8.

Scaling as ModelOpt and TensorRT do it: ``scale = amax / 448`` (448 is E4M3's largest finite
value), ``q = saturate(round_to_nearest_even(x / scale))`` in E4M3 (subnormals included), then
``x' = q * scale``. Per-tensor: one amax for the whole tensor; per-channel: one amax per row of
a ``[channels, ...]`` view (the caller picks the channel axis). Errors in fp32 (torch's
CPU sums are pairwise: relative error ~1e-7, far below what is measured here).
"""

from __future__ import annotations

import math

import torch

from onerec_trt.fp8_format import E4M3_MAX

SCHEMES = ("per_tensor", "per_channel")


def fp8_round_trip(x: torch.Tensor, channel_axis: int | None = None) -> torch.Tensor:
    """x through FP8 E4M3 and back (fp32), per-tensor (``channel_axis`` None) or per-channel."""
    x = x.float()
    if channel_axis is None:
        amax = x.abs().max()
    else:
        dims = [d for d in range(x.dim()) if d != channel_axis % x.dim()]
        amax = x.abs().amax(dim=dims, keepdim=True)
    scale = torch.where(amax > 0, amax / E4M3_MAX, torch.ones_like(amax))
    q = (x / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return q.float() * scale


def _sums(x: torch.Tensor, approx: torch.Tensor) -> tuple[float, float, float, float]:
    """sum x^2, sum (x - x')^2, sum |x|, sum |x - x'|."""
    x, diff = x.float(), x.float() - approx.float()
    return (float(x.square().sum()), float(diff.square().sum()),
            float(x.abs().sum()), float(diff.abs().sum()))


def _sqnr(signal: float, noise: float) -> float:
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def sqnr_db(x: torch.Tensor, approx: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio, 10 log10(sum x^2 / sum (x - x')^2), in dB."""
    signal, noise, _, _ = _sums(x, approx)
    return _sqnr(signal, noise)


def relative_error(x: torch.Tensor, approx: torch.Tensor) -> float:
    """Mean absolute error over mean absolute value: sum |x - x'| / sum |x| (L1, robust)."""
    _, _, size, err = _sums(x, approx)
    return err / size if size else 0.0


def round_trip_errors(x: torch.Tensor, channel_axis: int) -> dict[str, dict[str, float]]:
    """SQNR and relative error of the per-tensor and the per-channel E4M3 round trip."""
    out = {}
    for scheme, axis in (("per_tensor", None), ("per_channel", channel_axis)):
        signal, noise, size, err = _sums(x, fp8_round_trip(x, axis))
        out[scheme] = {"sqnr_db": _sqnr(signal, noise), "rel_error": err / size if size else 0.0}
    return out


def gemm_output_sqnr(inputs: torch.Tensor, weight: torch.Tensor) -> float:
    """SQNR of ``inputs @ weight.T`` when both operands are FP8 per-tensor (the quantize stage's
    scheme: ModelOpt's FP8 default), against the same GEMM in fp32."""
    inputs, weight = inputs.float(), weight.float()
    exact = inputs @ weight.t()
    approx = fp8_round_trip(inputs) @ fp8_round_trip(weight).t()
    return sqnr_db(exact, approx)

"""Log-softmax and logsumexp that stay finite in a TensorRT engine.

onnx-tensorrt imports ONNX ``ReduceLogSumExp`` as exp -> ReduceLogSum with no max shift (a
logit above ~88.7 overflows fp32 to inf) and ``LogSoftmax`` as Softmax -> Log (a probability
below fp32's smallest value becomes log 0 = -inf: a live beam candidate dies). ONNX Runtime
computes both stably, so the CPU graphs never showed it. When exporting, these functions write
the stable forms with plain ops instead:

    logsumexp(x)   = m + log(sum(exp(x - m))),   m = max(x) (0 where max(x) is infinite)
    log_softmax(x) = (x - m) - log(sum(exp(x - m)))

In eager torch they call torch's own kernels (the same formulas), so eager numbers do not move;
the exported graph equals them to float rounding, as it did with the ONNX ops.
"""

from __future__ import annotations

import torch


def exporting() -> bool:
    """True while ``torch.onnx.export`` traces the module."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def _shift(x: torch.Tensor, dim: int) -> torch.Tensor:
    """max(x) along ``dim`` (kept), 0 where it is infinite (a row of -inf stays -inf, not NaN)."""
    m = x.amax(dim, keepdim=True)
    return torch.where(torch.isinf(m), torch.zeros_like(m), m)


def logsumexp(x: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    if not exporting():
        return torch.logsumexp(x, dim, keepdim=keepdim)
    m = _shift(x, dim)
    out = m + torch.log(torch.exp(x - m).sum(dim, keepdim=True))
    return out if keepdim else out.squeeze(dim)


def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    if not exporting():
        return torch.log_softmax(x, dim)
    shifted = x - x.amax(dim, keepdim=True)
    return shifted - torch.log(torch.exp(shifted).sum(dim, keepdim=True))


"""Log-softmax and logsumexp that stay finite in a TensorRT engine and give a request the same
numbers in whatever batch it is served.

onnx-tensorrt imports ONNX ``ReduceLogSumExp`` as exp -> ReduceLogSum with no max shift (a
logit above ~88.7 overflows fp32 to inf) and ``LogSoftmax`` as Softmax -> Log (a probability
below fp32's smallest value becomes log 0 = -inf: a live beam candidate dies). ONNX Runtime
computes both stably, so the CPU graphs never showed it. When exporting, these functions write
forms that are stable in both runtimes:

    log_softmax(x) = (x - m) + max(LogSoftmax(x)),   m = max(x)
    logsumexp(x)   = m - max(LogSoftmax(x))          (m where max(x) is infinite)

``max(LogSoftmax(x))`` is the log of the largest probability, exp(0) / sum(exp(x - m)), at
least 1/V: finite even where TensorRT logs a Softmax, because only that probability is kept
(``lint`` accepts a LogSoftmax read only by ReduceMax). The sum and the log stay inside
LogSoftmax on purpose: ONNX Runtime computes it row by row, while its element-wise Log (and
ReduceSum over a short axis) round by a value's place in the buffer, so a row's scores moved
by one ulp with the batch it was served in. In eager torch these functions call torch's own
kernels, so eager numbers do not move; the exported graph equals them to float rounding.
"""

from __future__ import annotations

import torch


def exporting() -> bool:
    """True while ``torch.onnx.export`` traces the module."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def _log_peak(x: torch.Tensor, dim: int) -> torch.Tensor:
    """log(max(softmax(x))) along ``dim`` (kept) = -log(sum(exp(x - max(x)))): finite."""
    return torch.log_softmax(x, dim).amax(dim, keepdim=True)


def logsumexp(x: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    if not exporting():
        return torch.logsumexp(x, dim, keepdim=keepdim)
    m = x.amax(dim, keepdim=True)
    out = torch.where(torch.isinf(m), m, m - _log_peak(x, dim))  # a row of -inf stays -inf
    return out if keepdim else out.squeeze(dim)


def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    if not exporting():
        return torch.log_softmax(x, dim)
    return (x - x.amax(dim, keepdim=True)) + _log_peak(x, dim)

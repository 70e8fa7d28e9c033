"""Building blocks: RMSNorm, grouped-query attention, SwiGLU and mixture-of-experts FFNs."""

from __future__ import annotations

import math

import torch
from torch import nn

MASKED = -1e9  # finite, so a fully masked row (an all-padding history) gives no NaN


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # normalised in fp32 (as LLM stacks do), sqrt then divide (not rsqrt): torch and the
        # exported graph compute exactly the same ops, whatever the model's dtype
        xf = x.float()
        normed = xf / torch.sqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              mask: torch.Tensor | None) -> torch.Tensor:
    """Grouped-query attention without repeating keys/values.

    q [N, Hq, Tq, D]; k, v [N, Hkv, Tk, D]; mask broadcastable to [N, 1, Tq, Tk] (True = attend).
    Query heads are folded over the shared kv heads: head h reads kv head h // (Hq / Hkv).
    The scaled scores and the softmax are computed in fp32 whatever the dtype, so a bf16 model
    and its exported graph round at the same points (a bf16 scale constant would not).
    """
    n, hq, tq, d = q.shape
    hkv = k.shape[1]
    q = q.reshape(n, hkv, hq // hkv, tq, d)
    scores = torch.matmul(q, k.unsqueeze(2).transpose(-1, -2)).float() * (1.0 / math.sqrt(d))
    if mask is not None:
        scores = scores.masked_fill(~mask.unsqueeze(2), MASKED)
    probs = torch.softmax(scores, dim=-1).to(v.dtype)
    out = torch.matmul(probs, v.unsqueeze(2))
    return out.reshape(n, hq, tq, d)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[N, T, H*D] -> [N, H, T, D]"""
    n, t, _ = x.shape
    return x.view(n, t, heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[N, H, T, D] -> [N, T, H*D]"""
    n, h, t, d = x.shape
    return x.transpose(1, 2).reshape(n, t, h * d)


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gate(x)
        # silu written out as ONNX renders it (Sigmoid, Mul), so bf16 roundings match
        return self.dropout(self.down(g * torch.sigmoid(g) * self.up(x)))


class MoEFeedForward(nn.Module):
    """Top-k routed mixture of SwiGLU experts.

    Rendered densely (every expert runs, non-selected gates are zero): exact top-k routing in
    a static graph, which is what the one-graph-per-request export needs; not compute-sparse.
    """

    def __init__(self, dim: int, hidden: int, experts: int, top_k: int, dropout: float = 0.0):
        super().__init__()
        self.top_k = top_k
        self.router = nn.Linear(dim, experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(dim, hidden, dropout) for _ in range(experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(self.router(x).float(), dim=-1)
        top, idx = probs.topk(self.top_k, dim=-1)
        gates = torch.zeros_like(probs).scatter(-1, idx, top / top.sum(-1, keepdim=True))
        outs = torch.stack([expert(x) for expert in self.experts], dim=-1)  # [..., dim, E]
        return (outs * gates.to(x.dtype).unsqueeze(-2)).sum(-1)


def at_positions(x: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
    """x [N, S, ...] -> x [N, M, ...] at ``positions`` [N, M] (all of x when None)."""
    if positions is None:
        return x
    index = positions.reshape(*positions.shape, *([1] * (x.dim() - 2)))
    return x.gather(1, index.expand(-1, -1, *x.shape[2:]))

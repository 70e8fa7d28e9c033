"""FLOPs per GEMM layer of one request, for the share of a request that runs in FP8.

This project's models: the request-FLOP model's op list (``roofline.py``: every GEMM,
attention, embedding and top-k of the generation graph), so the share is of the whole request's
FLOPs. Imported transformers models have no analytic op list: their ``nn.Linear`` calls are
counted with forward hooks on one real request, and the share is of those GEMM FLOPs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class RequestFlops:
    per_layer: dict[str, float]  # nn.Linear name -> FLOPs in one request
    total: float  # the denominator of the share
    basis: str  # what total counts
    # the request's roofline ops with these bf16 layers (native models; None: imported)
    ops_for: Callable[[frozenset[str]], list] | None = None

    def fp8_share(self, bf16_layers: set[str] | list[str]) -> float:
        kept = set(bf16_layers)
        return sum(f for name, f in self.per_layer.items() if name not in kept) / self.total


def roofline_flops(config, users: int, beam: int) -> RequestFlops:
    from onerec_trt.roofline import onerec_ops

    ops = onerec_ops(config, users, beam)
    per_layer: dict[str, float] = {}
    for op in ops:
        if op.layer:
            per_layer[op.layer] = per_layer.get(op.layer, 0.0) + op.flops
    return RequestFlops(per_layer, sum(op.flops for op in ops),
                        f"request FLOPs (analysis roofline: {users} users x beam {beam}, "
                        "attention and top-k included)",
                        lambda bf16: onerec_ops(config, users, beam, excluded=bf16))


def counted_flops(generator: nn.Module, history: torch.Tensor) -> RequestFlops:
    """2 x rows x in x out of every nn.Linear call while ``generator`` runs ``history``."""
    per_layer: dict[str, float] = {}
    handles = []
    for name, module in generator.model.named_modules():
        if isinstance(module, nn.Linear):
            def hook(mod, args, _out, name=name):
                rows = args[0].numel() // mod.in_features
                per_layer[name] = per_layer.get(name, 0.0) + 2.0 * rows * mod.in_features \
                    * mod.out_features
            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            generator(history)
    finally:
        for handle in handles:
            handle.remove()
    return RequestFlops(per_layer, sum(per_layer.values()) or 1.0,
                        "nn.Linear FLOPs counted on a real request (attention not counted: "
                        "no analytic model of an imported graph)")


"""Capture the inputs of a model's ``nn.Linear`` layers (what an FP8 GEMM quantizes) with
forward hooks while the model runs on real data.

Rows are every axis but the last. Padding tokens can be dropped: set ``mask`` ([N, T], True =
real token) before a batch and name the layers it applies to (their inputs are [N, T, K]).
Each layer keeps a uniform random sample of at most ``max_rows`` rows over the whole run
(reservoir by random keys), so memory stays bounded however many batches run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class LinearInputs:
    def __init__(self, model: nn.Module, max_rows: int = 65536, seed: int = 0,
                 masked: Callable[[str], bool] = lambda name: False):
        self.layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
        self.max_rows, self.masked = max_rows, masked
        self.mask: torch.Tensor | None = None
        self.rows_seen = dict.fromkeys(self.layers, 0)
        self._rows: dict[str, torch.Tensor] = {}
        self._keys: dict[str, torch.Tensor] = {}
        self._gen = torch.Generator().manual_seed(seed)
        self._handles = []

    def __enter__(self) -> LinearInputs:
        for name, module in self.layers.items():
            self._handles.append(module.register_forward_pre_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def hook(_module, args):
            self.add(name, args[0])
        return hook

    def add(self, name: str, x: torch.Tensor) -> None:
        x = x.detach()
        if self.masked(name) and self.mask is not None:
            if tuple(x.shape[:-1]) != tuple(self.mask.shape):
                raise ValueError(f"{name}: input {list(x.shape)} does not match the token mask "
                                 f"{list(self.mask.shape)}")
            x = x[self.mask]
        rows = x.reshape(-1, x.shape[-1]).float()
        self.rows_seen[name] += rows.shape[0]
        keys = torch.rand(rows.shape[0], generator=self._gen)
        if name in self._rows:
            rows = torch.cat([self._rows[name], rows])
            keys = torch.cat([self._keys[name], keys])
        if rows.shape[0] > self.max_rows:
            keep = keys.topk(self.max_rows, largest=False).indices.sort().values
            rows, keys = rows[keep], keys[keep]
        self._rows[name], self._keys[name] = rows, keys

    def inputs(self) -> dict[str, torch.Tensor]:
        """Layer name -> [rows, in_features] for every layer that ran, in module order."""
        return {name: self._rows[name] for name in self.layers if name in self._rows}

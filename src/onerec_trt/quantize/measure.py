"""Overlap@10 of a calibrated model under an FP8 policy against the same model in bf16, on a
fixed set of validation histories: what ``quantize --search`` maximizes the FP8 share under."""

from __future__ import annotations

import numpy as np
import torch

from onerec_trt.metrics import overlap
from onerec_trt.progress import progress_bar
from onerec_trt.quantize.ptq import linear_layers, set_bf16_layers

Z_ONE_SIDED_95 = 1.645


class OverlapMeter:
    """``meter(bf16_layers)`` -> (mean overlap@10, its one-sided 95% lower confidence bound)
    of the generation loop with those layers in bf16 and every other GEMM in FP8, against
    every layer in bf16 (computed once). The bound is what a search holds to its target: the
    best of many candidates measured on one sample is optimistic by about its noise, and the
    bound keeps the chosen policy at the target on users it was not chosen on."""

    def __init__(self, generator: torch.nn.Module, histories: np.ndarray, batch: int,
                 reference: np.ndarray | None = None):
        """``reference``: the bf16 items of these histories, where another meter of the same
        model computed them (they do not depend on the calibration)."""
        self.generator = generator
        self.batches = [torch.from_numpy(histories[i:i + batch])
                        for i in range(0, len(histories), batch)]
        self.layers = linear_layers(generator.model)
        self.reference = self.items(set(self.layers)) if reference is None else reference

    def items(self, bf16_layers: set[str]) -> np.ndarray:
        set_bf16_layers(self.generator.model, bf16_layers)
        with torch.no_grad():
            return np.concatenate([self.generator(b)[0].numpy() for b in progress_bar(
                self.batches, desc="validate", unit="batch", leave=False)])

    def __call__(self, bf16_layers: set[str]) -> tuple[float, float]:
        per_user = overlap(self.reference, self.items(bf16_layers), 10)
        mean = float(per_user.mean())
        se = float(per_user.std(ddof=1) / np.sqrt(len(per_user))) if len(per_user) > 1 else 0.0
        return mean, mean - Z_ONE_SIDED_95 * se

"""One model's FP8 profile: per-layer weight and activation statistics, FP8 errors, summaries.

GEMM layers are the model's ``nn.Linear`` modules (what the quantize stage puts in FP8);
embedding tables are profiled apart (lookups, never FP8 GEMMs). Each GEMM layer also gets the
SQNR of its output with both operands in per-tensor FP8 (``gemm_sqnr_db``): the error the FP8
engine would add in that layer, and the number the exclusion proposal reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from onerec_trt.analysis.fp8 import gemm_output_sqnr
from onerec_trt.analysis.stats import summarize, tensor_stats, value_sample
from onerec_trt.progress import progress_bar

GEMM_ROWS = 2048  # input rows used for the GEMM output error (a seeded subset when more)
HIST_VALUES = 200_000  # values per model and kind kept for the histograms


@dataclass
class ModelProfile:
    name: str
    description: str
    layers: dict[str, dict]  # nn.Linear name -> {"weight": stats, "activation": stats, ...}
    embeddings: dict[str, dict]  # embedding table name -> weight stats
    info: dict = field(default_factory=dict)  # data, training, sizes: whatever explains it
    weight_values: np.ndarray | None = None  # samples for the histograms
    activation_values: np.ndarray | None = None

    def summary(self) -> dict:
        layers = list(self.layers.values())
        return {
            "weights": summarize([r["weight"] for r in layers]),
            "activations": summarize([r["activation"] for r in layers if "activation" in r]),
            "embeddings": summarize(list(self.embeddings.values())),
            "gemm_sqnr_min_db": min((r["gemm_sqnr_db"] for r in layers if "gemm_sqnr_db" in r),
                                    default=None),
        }

    def to_json(self) -> dict:
        return {"description": self.description, **self.info, **self.summary(),
                "layers": self.layers, "embedding_tables": self.embeddings}


def profile_model(name: str, description: str, model: nn.Module,
                  inputs: dict[str, torch.Tensor], rows_seen: dict[str, int] | None = None,
                  progress: bool = True, seed: int = 0) -> ModelProfile:
    """Statistics of every ``nn.Linear`` weight and captured input, and every embedding."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    layers = {}
    gen = torch.Generator().manual_seed(seed)
    for layer, module in progress_bar(linears, desc=f"{name} layers", unit="layer", leave=False,
                                      disable=not progress):
        weight = module.weight.detach().float()
        rec = {"in_features": module.in_features, "out_features": module.out_features,
               "weight": tensor_stats(weight, 0)}
        x = inputs.get(layer)
        if x is not None:
            rec["activation"] = tensor_stats(x, -1)
            rec["rows_seen"] = int((rows_seen or {}).get(layer, x.shape[0]))
            rec["rows_kept"] = int(x.shape[0])
            if x.shape[0] > GEMM_ROWS:
                x = x[torch.randperm(x.shape[0], generator=gen)[:GEMM_ROWS]]
            rec["gemm_sqnr_db"] = gemm_output_sqnr(x, weight)
        layers[layer] = rec
    tables = {n: m.weight for n, m in model.named_modules()
              if isinstance(m, nn.Embedding | nn.EmbeddingBag)}
    embeddings = {n: tensor_stats(w.detach().float(), 0) for n, w in tables.items()}
    weights = [m.weight for _, m in linears]
    acts = [inputs[n] for n, _ in linears if n in inputs]
    return ModelProfile(
        name, description, layers, embeddings,
        weight_values=value_sample(weights, HIST_VALUES, seed) if weights else None,
        activation_values=value_sample(acts, HIST_VALUES, seed) if acts else None)

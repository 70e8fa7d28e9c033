"""The generative recommender's activations: real users' training histories through the real
generation graph (context processor, the L decode steps with all B beams, trie-constrained beam
search), the same run the quantize stage calibrates on."""

from __future__ import annotations

import numpy as np
import torch

from onerec_trt.analysis.capture import LinearInputs
from onerec_trt.analysis.profile import ModelProfile, profile_model
from onerec_trt.model.generate import Generator
from onerec_trt.progress import progress_bar


def _is_context_layer(name: str) -> bool:
    """Layers whose input is [N, S, d]: one row per history position (padding masked out)."""
    return name.startswith("context.")


def describe(cfg, params: int) -> str:
    """One line on the analyzed model: the project's OneRec-V2 style model, or an imported
    one (an LLM backbone: the fourth model of the paper's comparison)."""
    if hasattr(cfg, "family"):  # model.hf.loader.ImportedConfig
        return (f"imported {cfg.family} generative recommender ({cfg.model_type}, "
                f"{params:,} parameters, codebooks {cfg.codebook_sizes} with the rest of the "
                "vocabulary as one more logit)")
    return (f"OneRec-V2-style generative recommender ({params:,} parameters, "
            f"d={cfg.d_model}, {cfg.context_layers} context + "
            f"{cfg.decoder_layers} decoder layers, codebooks {cfg.codebook_sizes})")


def profile_onerec(bundle, histories: np.ndarray, source: str, beam: int, batch: int,
                   max_rows: int, progress: bool = True, seed: int = 0) -> ModelProfile:
    model = bundle.model.float().eval()
    graph = Generator(model, beam, min(10, beam)).eval()
    batches = [torch.from_numpy(histories[i:i + batch]) for i in range(0, len(histories), batch)]
    with LinearInputs(model, max_rows, seed, masked=_is_context_layer) as cap, torch.no_grad():
        for hist in progress_bar(batches, desc="onerec generation", unit="batch", leave=False,
                                 disable=not progress):
            cap.mask = hist != 0
            graph(hist)
    params = sum(p.numel() for p in model.parameters())
    description = describe(bundle.config, params)
    profile = profile_model("onerec", description, model, cap.inputs(), cap.rows_seen,
                            progress, seed)
    real = int((histories != 0).sum())
    profile.info = {
        "model": str(bundle.path) if bundle.path else None,
        "parameters": int(params),
        "activation_data": {
            "source": source, "users": int(len(histories)), "history_length": int(
                histories.shape[1]), "batch_users": batch, "beam": beam,
            "real_history_tokens": real,
            "padding_tokens_dropped": int(histories.size - real),
            "run": "model.generate.Generator (context + L decode steps with all beams + beam "
                   "search), "
                   "torch fp32 CPU; context-processor rows at padding positions are left out "
                   "(masked everywhere, they reach no output)",
        },
    }
    return profile

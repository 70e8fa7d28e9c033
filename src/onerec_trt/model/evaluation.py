"""A model's Recall/NDCG@5/10 on histories and their next items, by the generation loop's beam
search: training's validation (``model/train/``) and the evaluate stage both use it."""

from __future__ import annotations

import numpy as np
import torch

from onerec_trt.data import pad_histories
from onerec_trt.metrics import recall_ndcg
from onerec_trt.model.generate import Generator, beam_search
from onerec_trt.model.protocol import GenerativeRecommender
from onerec_trt.progress import progress_bar


def evaluate_model(model: GenerativeRecommender, histories: list[np.ndarray], targets: np.ndarray,
                   beam: int, topk: int = 10, batch: int = 256,
                   generator: Generator | None = None,
                   progress: bool = False) -> tuple[dict, np.ndarray]:
    """Recall/NDCG@5/10 of beam search -> (metrics, ranked items [U, topk])."""
    model.eval()
    generator = generator or Generator(model, beam, topk)
    # an imported model (adapter, factory) has max_history; the project's own, cfg
    length = getattr(model, "max_history", None) or model.cfg.max_history
    ranked = []
    steps = range(0, len(histories), batch)
    for start in progress_bar(steps, desc="generate", unit="batch", disable=not progress,
                              leave=False):
        hist = torch.from_numpy(pad_histories(histories[start:start + batch], length))
        ranked.append(beam_search(model, hist, beam, topk, generator=generator).items)
    ranked = np.concatenate(ranked) if ranked else np.zeros((0, topk), np.int64)
    return recall_ndcg(ranked, targets), ranked

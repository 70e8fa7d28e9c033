"""The torch generation loop as a Polygraphy runner, so the Comparator can use it."""

from __future__ import annotations

import time

import numpy as np
import torch
from polygraphy.backend.base import BaseRunner
from polygraphy.common import TensorMetadata

from onerec_trt.model.checkpoint import load_model
from onerec_trt.model.generate import Generator, beam_search


class TorchGenerationRunner(BaseRunner):
    """Runs the generation loop of a model folder; ``dtype`` is "fp32" or "bf16"."""

    def __init__(self, model: str, beam: int, topk: int, dtype: str = "fp32",
                 device: str = "cpu", name=None):
        super().__init__(name=name, prefix="torch-runner")
        self.model_path, self.beam, self.topk, self.dtype = model, beam, topk, dtype
        self.device = torch.device(device)

    def activate_impl(self):
        dtype = torch.bfloat16 if self.dtype == "bf16" else torch.float32
        bundle = load_model(self.model_path, dtype)
        self.history_length = bundle.config.max_history
        self.model = bundle.model.to(device=self.device)
        self.generator = Generator(self.model, self.beam, self.topk).to(self.device)

    def get_input_metadata_impl(self):
        return TensorMetadata().add("history", np.int64, (-1, self.history_length))

    def infer_impl(self, feed_dict):
        start = time.perf_counter()
        history = torch.from_numpy(feed_dict["history"]).to(self.device)
        recs = beam_search(self.model, history, self.beam, self.topk, generator=self.generator)
        self.inference_time = time.perf_counter() - start
        return {"items": recs.items, "scores": recs.scores, "codes": recs.codes}

    def deactivate_impl(self):
        del self.model, self.generator

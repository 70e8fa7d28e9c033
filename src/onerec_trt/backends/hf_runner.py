"""transformers' own constrained beam search as a Polygraphy runner (``--candidate hf``): the
oracle written outside this project, for imported models (``model/hf/oracle.py``)."""

from __future__ import annotations

import time

import numpy as np
import torch
from polygraphy.backend.base import BaseRunner
from polygraphy.common import TensorMetadata

from onerec_trt.errors import user_error
from onerec_trt.model.checkpoint import load_model, resolve_model_path


class TransformersGenerateRunner(BaseRunner):
    """``generate(num_beams=beam, num_return_sequences=topk, prefix_allowed_tokens_fn=trie)``
    on an imported model's checkpoint, fp32. ``batch``: users per ``generate`` call (1: one
    unpadded prompt at a time, verify's oracle; None: the whole request, left-padded, as bench
    times it)."""

    def __init__(self, model: str, beam: int, topk: int, name=None, batch: int | None = 1):
        super().__init__(name=name, prefix="transformers-runner")
        self.model_path, self.beam, self.topk, self.batch = model, beam, topk, batch

    def activate_impl(self):
        from onerec_trt.model.hf.record import IMPORT_JSON, ImportRecord

        folder = resolve_model_path(self.model_path)
        if not (folder / IMPORT_JSON).is_file():
            raise user_error(f"--candidate hf needs a model imported from a transformers "
                             f"checkpoint; {folder} is not one",
                             "onerec-trt import --hf DIR --catalogue FILE --out MODEL")
        bundle = load_model(folder, torch.float32)
        self.record = ImportRecord.load(folder)
        self.backbone = bundle.model.backbone
        self.codes = bundle.semantic_ids.codes
        self.history_length = bundle.config.max_history

    def get_input_metadata_impl(self):
        return TensorMetadata().add("history", np.int64, (-1, self.history_length))

    def infer_impl(self, feed_dict):
        from onerec_trt.model.hf.oracle import transformers_generate

        start = time.perf_counter()
        history = feed_dict["history"]
        recs = transformers_generate(self.backbone, self.record, self.codes, history,
                                     self.beam, self.topk, batch=self.batch or len(history))
        self.inference_time = time.perf_counter() - start
        return {"items": recs.items, "scores": recs.scores, "codes": recs.codes}

    def deactivate_impl(self):
        del self.backbone

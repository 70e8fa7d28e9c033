"""The oracle written outside this project: transformers' own beam search,
``generate(num_beams=B, num_return_sequences=K, prefix_allowed_tokens_fn=<catalogue trie>)``,
on the same checkpoint and the same prompts (one user at a time, unpadded).

Its scores are sums of full-vocabulary log-probabilities (``length_penalty=0``), what the
imported models' graphs compute. Ties: transformers' ``torch.topk`` promises no order among
equal scores; the project's loop puts the lower parent beam, then the lower code, first.
"""

from __future__ import annotations

import numpy as np
import torch

from onerec_trt.model.generate import Recommendations
from onerec_trt.model.hf.record import ImportRecord


class CatalogueTrie:
    """Token-level trie of the catalogue: allowed next tokens after a generated prefix."""

    def __init__(self, codes: np.ndarray, level_ids: list[list[int]]):
        tokens = np.stack([np.asarray(level_ids[t])[codes[1:, t]]
                           for t in range(codes.shape[1])], axis=1)  # [N, L]
        self.item = {tuple(row): i for i, row in enumerate(tokens.tolist(), start=1)}
        self.codes = {tuple(row): code for row, code in zip(tokens.tolist(),
                                                            codes[1:].tolist(), strict=True)}
        children: dict[tuple, set] = {}
        for row in tokens.tolist():
            for t in range(len(row)):
                children.setdefault(tuple(row[:t]), set()).add(row[t])
        self.children = {k: sorted(v) for k, v in children.items()}

    def allowed(self, prefix: tuple) -> list[int]:
        return self.children.get(prefix, [])


def transformers_generate(backbone, record: ImportRecord, codes: np.ndarray,
                          histories: np.ndarray, beam: int, topk: int,
                          progress=None) -> Recommendations:
    """histories [N, S] (left-padded model item ids) -> the top-``topk`` items of each user."""
    from transformers import GenerationConfig

    trie = CatalogueTrie(codes, record.level_ids)
    table = record.prompt.item_table(codes, record.level_ids, record.pad_id)
    levels = codes.shape[1]
    encoder_decoder = record.family == "encoder-decoder"
    config = GenerationConfig(
        num_beams=beam, num_return_sequences=topk, max_new_tokens=levels, do_sample=False,
        length_penalty=0.0, output_scores=True, return_dict_in_generate=True,
        pad_token_id=record.pad_id, eos_token_id=None,
        decoder_start_token_id=record.decoder_start_id)
    n = len(histories)
    items = np.full((n, topk), -1, dtype=np.int64)
    scores = np.full((n, topk), -np.inf, dtype=np.float32)
    out_codes = np.full((n, topk, levels), -1, dtype=np.int64)
    for u, history in enumerate(progress(histories) if progress else histories):
        prompt = torch.tensor([record.prompt.render(history, table)])
        skip = 1 if encoder_decoder else prompt.shape[1]  # the decoder start token / prompt

        def allowed(_batch, ids, skip=skip):
            return trie.allowed(tuple(ids[skip:].tolist()))

        with torch.no_grad():
            out = backbone.generate(prompt, attention_mask=torch.ones_like(prompt),
                                    generation_config=config, prefix_allowed_tokens_fn=allowed)
        for k, (seq, score) in enumerate(zip(out.sequences[:, skip:].tolist(),
                                             out.sequences_scores.tolist(), strict=True)):
            key = tuple(seq)
            if key in trie.item and score > -1e8:  # transformers' dead beams score ~-1e9
                items[u, k], scores[u, k], out_codes[u, k] = trie.item[key], score, trie.codes[key]
    return Recommendations(items, scores, out_codes)

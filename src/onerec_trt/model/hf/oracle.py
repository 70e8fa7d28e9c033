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
                          progress=None, batch: int = 1) -> Recommendations:
    """histories [N, S] (left-padded model item ids) -> the top-``topk`` items of each user.

    ``batch`` users share one ``generate`` call, their prompts left-padded to the longest (the
    pad token, attention mask 0): how a transformers user batches; 1: one unpadded prompt a call.
    """
    from transformers import GenerationConfig

    trie = CatalogueTrie(codes, record.level_ids)
    table = record.prompt.item_table(codes, record.level_ids, record.pad_id)
    levels = codes.shape[1]
    config = GenerationConfig(
        num_beams=beam, num_return_sequences=topk, max_new_tokens=levels, do_sample=False,
        length_penalty=0.0, output_scores=True, return_dict_in_generate=True,
        pad_token_id=record.pad_id, eos_token_id=None,
        decoder_start_token_id=record.decoder_start_id)
    n = len(histories)
    out = Recommendations(np.full((n, topk), -1, dtype=np.int64),
                          np.full((n, topk), -np.inf, dtype=np.float32),
                          np.full((n, topk, levels), -1, dtype=np.int64))
    starts = range(0, n, max(1, batch))
    for first in progress(starts) if progress else starts:
        users = range(first, min(n, first + max(1, batch)))
        prompts = [record.prompt.render(histories[u], table) for u in users]
        _generate_batch(backbone, record, trie, config, prompts, list(users), out)
    return out


def _left_padded(prompts: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) [n, longest], each prompt right-aligned behind pad tokens."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt):] = torch.tensor(prompt)
            mask[row, width - len(prompt):] = 1
    return ids, mask


def _generate_batch(backbone, record: ImportRecord, trie: CatalogueTrie, config,
                    prompts: list[list[int]], users: list[int], out: Recommendations) -> None:
    """One ``generate`` call for ``users``; their items, scores and codes written into ``out``."""
    ids, mask = _left_padded(prompts, record.pad_id)
    skip = 1 if record.family == "encoder-decoder" else ids.shape[1]  # decoder start / prompt

    def allowed(_batch, seq, skip=skip):
        return trie.allowed(tuple(seq[skip:].tolist()))

    with torch.no_grad():
        result = backbone.generate(ids, attention_mask=mask, generation_config=config,
                                   prefix_allowed_tokens_fn=allowed)
    topk = out.items.shape[1]
    sequences = result.sequences[:, skip:].tolist()
    scores = result.sequences_scores.tolist()
    for row, (seq, score) in enumerate(zip(sequences, scores, strict=True)):
        u, k = users[row // topk], row % topk
        key = tuple(seq)
        if key in trie.item and score > -1e8:  # transformers' dead beams score ~-1e9
            out.items[u, k], out.scores[u, k] = trie.item[key], score
            out.codes[u, k] = trie.codes[key]

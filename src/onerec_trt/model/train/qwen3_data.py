"""Item histories as itemic-token sequences for a causal LM (MiniOneRec / OpenOneRec style).

An item is ``<|sid_begin|><s_a_X><s_b_Y><s_c_Z><|sid_end|>``; a prompt is the last S items,
oldest first, then ``<|sid_begin|>``, and the model writes the next item's code tokens. Training
renders windows of a user's items and scores the code tokens of every item but the first, so one
forward pass teaches every position (teacher forcing). Validation ranks items with the
one generation loop on the Qwen3 adapter (torch is imported there, when called).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onerec_trt.artifacts import write_text
from onerec_trt.errors import user_error
from onerec_trt.model.hf.itemic import BEGIN, END, PAD, code_token, itemic_vocabulary

IGNORE = -100  # the target of a position that carries no loss (torch's cross-entropy default)
PROMPT_TEMPLATE = "{history}" + BEGIN
ITEM_TEMPLATE = BEGIN + "{codes}" + END
CATALOGUE_HEADER = "item_id\tcodes"


@dataclass
class ItemicLayout:
    """Token ids of the itemic vocabulary and of every item's rendering."""

    tokens: list[str]
    codebook_sizes: list[int]
    item_tokens: np.ndarray  # [num_items + 1, levels + 2]: begin, codes..., end (row 0 unused)
    offsets: list[int]  # token id of code 0 of each level

    @property
    def width(self) -> int:
        """Tokens per rendered item."""
        return self.item_tokens.shape[1]

    @property
    def levels(self) -> int:
        return len(self.codebook_sizes)

    def token_id(self, token: str) -> int:
        return self.tokens.index(token)

    @property
    def pad_id(self) -> int:
        return self.token_id(PAD)

    @property
    def begin_id(self) -> int:
        return self.token_id(BEGIN)

    @property
    def end_id(self) -> int:
        return self.token_id(END)


def itemic_layout(codes: np.ndarray, codebook_sizes: list[int]) -> ItemicLayout:
    """The layout of semantic IDs ``codes`` [num_items + 1, levels] (row 0 = padding)."""
    tokens = itemic_vocabulary(list(codebook_sizes))
    index = {t: i for i, t in enumerate(tokens)}
    offsets = [index[code_token(level, 0)] for level in range(len(codebook_sizes))]
    body = np.where(codes < 0, 0, codes) + np.asarray(offsets, dtype=np.int64)
    rows = len(codes)
    item_tokens = np.concatenate([np.full((rows, 1), index[BEGIN], np.int64), body,
                                  np.full((rows, 1), index[END], np.int64)], axis=1)
    return ItemicLayout(tokens, list(codebook_sizes), item_tokens, offsets)


def item_windows(train: list[np.ndarray], length: int) -> list[np.ndarray]:
    """Cut each sequence into windows of up to ``length + 1`` items, from the end backwards,
    overlapping by one item: every item but a sequence's first is a target exactly once, and
    the most recent one sees a full history of ``length`` items, as at validation."""
    windows = []
    for seq in train:
        end = len(seq) - 1
        while end > 0:
            start = max(0, end - length)
            windows.append(seq[start:end + 1])
            end = start
    return windows


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                   pool: int = 64) -> list[np.ndarray]:
    """Shuffled batches of window indices; within each pool of ``pool`` batches the windows are
    sorted by length, so a batch wastes little on padding."""
    order = rng.permutation(len(lengths))
    batches = []
    chunk = batch_size * pool
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def render_windows(windows: list[np.ndarray], layout: ItemicLayout) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Right-padded token ids [B, T] and next-token targets [B, T]: ``targets[p]`` is token
    ``p + 1`` where that is a code of a window's item after its first, else ``IGNORE``.

    Padding sits after the tokens, so a causal model needs no attention mask."""
    width = layout.width
    longest = max(len(w) for w in windows) * width
    ids = np.full((len(windows), longest), layout.pad_id, dtype=np.int64)
    scored = np.zeros_like(ids, dtype=bool)
    code_slot = np.zeros(width, dtype=bool)
    code_slot[1:1 + layout.levels] = True
    for row, window in enumerate(windows):
        n = len(window) * width
        ids[row, :n] = layout.item_tokens[window].reshape(-1)
        scored[row, width:n] = np.tile(code_slot, len(window) - 1)
    targets = np.full_like(ids, IGNORE)
    targets[:, :-1] = np.where(scored[:, 1:], ids[:, 1:], IGNORE)
    return ids, targets


def prompt_ids(history: np.ndarray, max_history: int, layout: ItemicLayout) -> np.ndarray:
    """The prompt of one history: its last ``max_history`` items rendered, then the begin."""
    items = history[-max_history:]
    return np.append(layout.item_tokens[items].reshape(-1), layout.begin_id)


def catalogue_codes(codes: np.ndarray) -> list[str]:
    """Each model item's code tokens, ``<s_a_5><s_b_17><s_c_200>``, for items 1..N."""
    return ["".join(code_token(level, int(c)) for level, c in enumerate(row))
            for row in codes[1:]]


def write_catalogue(path: str | Path, item_ids: list[str], codes: np.ndarray) -> Path:
    """``catalogue.tsv``: a header, then one row per model item 1..N: the dataset's item id and
    the item's code tokens."""
    if len(item_ids) != len(codes) - 1:
        raise ValueError(f"{len(item_ids)} item ids for {len(codes) - 1} semantic IDs")
    bad = [i for i in item_ids if any(ch in i for ch in "\t\r\n")]
    if bad:
        raise user_error(f"item id {bad[0]!r} holds a tab or a line break",
                         "the catalogue is a TSV file: rename such items in the data")
    rows = [f"{item}\t{tokens}" for item, tokens in zip(item_ids, catalogue_codes(codes),
                                                        strict=True)]
    return write_text(path, "\n".join([CATALOGUE_HEADER, *rows]) + "\n")


def rank_users(model, histories, max_history: int, layout: ItemicLayout, semantic_ids,
               beam: int, topk: int = 10, batch: int = 64) -> np.ndarray:
    """Ranked model item ids [U, topk] for each history: the HF model behind the Qwen3 adapter
    in the one generation loop, so validation measures what the imported model's graphs
    compute (scores over the full vocabulary, the catalogue trie)."""
    import torch

    from onerec_trt.data import pad_histories
    from onerec_trt.model.generate import Generator, beam_search
    from onerec_trt.model.hf.decoder_only import DecoderOnlyRecommender
    from onerec_trt.model.hf.prompt import CODES, Prompt
    from onerec_trt.model.tokenizer import SemanticIds

    prompt = Prompt([], [layout.begin_id, CODES, layout.end_id], [layout.begin_id],
                    PROMPT_TEMPLATE, ITEM_TEMPLATE)
    level_ids = [list(range(o, o + n)) for o, n in zip(layout.offsets, layout.codebook_sizes,
                                                       strict=True)]
    # the adapter's codebooks hold one more code: the rest of the vocabulary
    ids = SemanticIds(semantic_ids.codes, [n + 1 for n in semantic_ids.codebook_sizes])
    adapter = DecoderOnlyRecommender(model, ids, prompt, level_ids, max_history,
                                     layout.pad_id).eval()
    generator = Generator(adapter, beam, min(topk, beam))
    ranked = np.full((len(histories), topk), -1, dtype=np.int64)
    with torch.inference_mode():
        for start in range(0, len(histories), batch):
            hist = pad_histories(histories[start:start + batch], max_history)
            found = beam_search(adapter, torch.from_numpy(hist), beam, min(topk, beam),
                                generator=generator).items
            ranked[start:start + len(found), :found.shape[1]] = found
    return ranked

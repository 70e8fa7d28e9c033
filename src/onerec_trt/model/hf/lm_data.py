"""Item histories as itemic-token sequences for a causal LM (MiniOneRec / OpenOneRec style).

An item is ``<|sid_begin|><s_a_X><s_b_Y><s_c_Z><|sid_end|>``; a prompt is the last S items,
oldest first, then ``<|sid_begin|>``, and the model writes the next item's code tokens. Training
renders windows of a user's items and scores the code tokens of every item but the first, so one
forward pass teaches every position (teacher forcing). Validation ranks items with a
trie-constrained beam over the model's forward (torch is imported there, when called).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
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


def equal_length_batches(lengths: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Indices grouped by equal length, at most ``batch_size`` a group: prompts of one length
    need neither padding nor an attention mask."""
    for length in np.unique(lengths):
        same = np.flatnonzero(lengths == length)
        for start in range(0, len(same), batch_size):
            yield same[start:start + batch_size]


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


class ItemBeam:
    """Trie-constrained beam search over the items' code tokens, on the HF model's forward and
    its KV cache; for validation (prompts of one length a batch, so no padding)."""

    def __init__(self, trie, layout, beam: int, topk: int = 10):
        import torch

        self.tables = [torch.from_numpy(trie.dense_next(t)) for t in range(trie.levels)]
        self.leaf_item = torch.from_numpy(trie.leaf_item)
        self.offsets, self.sizes = layout.offsets, layout.codebook_sizes
        self.beam, self.topk = beam, topk

    def __call__(self, model, ids):
        """Prompt ids [U, T] -> the top ``topk`` model item ids [U, topk] (-1: no item)."""
        import torch

        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        cache, logp = out.cache, out.logits[:, -1].float().log_softmax(-1)
        users = ids.shape[0]
        node = torch.zeros(users, 1, dtype=torch.long)
        score = torch.zeros(users, 1)
        for t, (offset, size) in enumerate(zip(self.offsets, self.sizes, strict=True)):
            width = node.shape[1]
            child = self.tables[t][node]  # [U, width, size]: child node, -1 where no item
            cand = score[..., None] + logp[:, offset:offset + size].view(users, width, size)
            cand = cand.masked_fill(child < 0, -math.inf).view(users, -1)
            last = t == len(self.sizes) - 1
            score, idx = cand.topk(min(self.topk if last else self.beam, cand.shape[1]), dim=1)
            node = child.view(users, -1).gather(1, idx).clamp(min=0)
            if last:
                break
            cache.reorder_cache((torch.arange(users)[:, None] * width + idx // size).view(-1))
            step = model(input_ids=(offset + idx % size).view(-1, 1), cache=cache, use_cache=True)
            logp = step.logits[:, -1].float().log_softmax(-1)
        items = self.leaf_item[node]
        return torch.where(torch.isfinite(score), items, -1).numpy()


def rank_users(model, histories, max_history: int, layout, search: ItemBeam,
               batch: int = 32):
    """Ranked model item ids [U, topk] for each history (prompts grouped by length)."""
    import torch

    prompts = [prompt_ids(h, max_history, layout) for h in histories]
    ranked = np.full((len(prompts), search.topk), -1, dtype=np.int64)
    model.eval()
    with torch.inference_mode():
        for rows in equal_length_batches(np.array([len(p) for p in prompts]), batch):
            found = search(model, torch.from_numpy(np.stack([prompts[r] for r in rows])))
            ranked[rows, :found.shape[1]] = found
    return ranked

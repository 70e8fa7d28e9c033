"""Untrained models and synthetic catalogues: ``onerec-trt init``, the scaling sweeps and the
GPU evidence (speed and scale never depend on what the weights learned).

Random weights are the training init (``OneRecModel.reset_parameters``), materialised once on
the device from a model built on ``meta``; the catalogue is random unique semantic IDs. Imports
torch, numpy and the model only (no tokenizer, no scipy): the device script uses this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from onerec_trt.model.config import ModelConfig
from onerec_trt.model.onerec import OneRecModel
from onerec_trt.model.trie import Trie


@dataclass
class SyntheticIds:
    """What generation needs from a tokenizer: the trie and the codebook sizes."""

    trie: Trie
    codebook_sizes: list[int]

    @property
    def num_items(self) -> int:
        return len(self.trie.leaf_item)

    @property
    def levels(self) -> int:
        return len(self.codebook_sizes)


def random_codes(num_items: int, codebook_sizes: list[int], seed: int = 0) -> np.ndarray:
    """[num_items, L] distinct random code tuples (uniform over the code space)."""
    space = int(np.prod([int(v) for v in codebook_sizes], dtype=np.float64))
    if num_items > space:
        raise ValueError(f"{num_items} items do not fit {codebook_sizes} ({space} code tuples)")
    rng = np.random.default_rng(seed)
    if space <= 4 * num_items:  # dense: a random subset of all tuples
        flat = rng.choice(space, size=num_items, replace=False)
    else:
        flat = np.unique(rng.integers(0, space, size=num_items + num_items // 4 + 16))
        while len(flat) < num_items:
            flat = np.unique(np.concatenate([flat, rng.integers(0, space, size=num_items)]))
        flat = rng.permutation(flat)[:num_items]
    codes = np.zeros((num_items, len(codebook_sizes)), dtype=np.int64)
    for level in range(len(codebook_sizes) - 1, -1, -1):
        flat, codes[:, level] = np.divmod(flat, codebook_sizes[level])
    return codes


def synthetic_ids(num_items: int, codebook_sizes: list[int], seed: int = 0) -> SyntheticIds:
    codes = random_codes(num_items, codebook_sizes, seed)
    items = np.arange(1, num_items + 1, dtype=np.int64)
    return SyntheticIds(Trie.from_codes(codes, items, list(codebook_sizes)),
                        list(codebook_sizes))


def random_model(cfg: ModelConfig, ids: SyntheticIds | None = None, device="cpu",
                 dtype=torch.float32, seed: int = 0) -> OneRecModel:
    """A model with random weights, built on ``meta`` and materialised once on ``device``
    (a 1B-parameter model never exists twice, nor in fp32 when ``dtype`` is bf16)."""
    with torch.device("meta"):
        model = OneRecModel(cfg)
    model = model.to(dtype).to_empty(device=device)
    model.reset_parameters(torch.Generator(device=device).manual_seed(seed))
    model.semantic_ids = ids
    return model.eval()


def dense_table_bytes(trie: Trie) -> int:
    """Bytes of the reference graph's dense next-node tables (int64 [nodes_t, V_t] per step)."""
    return int(sum(trie.nodes(t) * trie.codebook_sizes[t] * 8 for t in range(trie.levels)))


def csr_bytes(trie: Trie) -> int:
    """Bytes of the plugins' packed CSR trie (int64 indptr, child codes, leaf items)."""
    return int(sum(p.nbytes for p in trie.indptr) + sum(c.nbytes for c in trie.child_code)
               + trie.leaf_item.nbytes)


def synthetic_histories(users: int, length: int, num_items: int, seed: int = 0):
    """[users, length] requests of random items, random lengths, left-padded with 0."""
    from onerec_trt.data.memory import require_histories_memory

    require_histories_memory(users, length)  # init checks first; import, factory reach here
    rng = np.random.default_rng(seed)
    hist = rng.integers(1, num_items + 1, size=(users, length), dtype=np.int64)
    hist[np.arange(length)[None, :] < rng.integers(0, length, (users, 1))] = 0
    return hist

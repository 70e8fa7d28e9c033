"""The prefix trie of the catalogue's semantic IDs, as CSR arrays per level and dense tables.

Nodes at depth t are the distinct code prefixes of length t in lexicographic order, so node j
at depth t has children ``indptr[t][j] .. indptr[t][j+1] - 1`` at depth t+1 (child node id =
CSR position) with codes ``child_code[t][...]`` (ascending). Depth 0 is one root node. Each
leaf (depth L) is one item: ``leaf_item[leaf]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Trie:
    codebook_sizes: list[int]
    indptr: list[np.ndarray]  # per step t: [nodes_t + 1] int64
    child_code: list[np.ndarray]  # per step t: [nodes_{t+1}] int64
    leaf_item: np.ndarray  # [nodes_L] int64 item id of each leaf

    @classmethod
    def from_codes(cls, codes: np.ndarray, item_ids: np.ndarray, codebook_sizes: list[int]) -> Trie:
        """codes [n, L] unique rows; item_ids [n]."""
        order = np.lexsort(codes.T[::-1])
        codes, item_ids = codes[order], item_ids[order]
        levels = codes.shape[1]
        indptr, child_code = [], []
        parent = np.zeros(len(codes), dtype=np.int64)  # node id of each item's prefix at depth t
        parents_count = 1
        for t in range(levels):
            prefix = codes[:, : t + 1]
            new = np.ones(len(codes), dtype=bool)
            new[1:] = (prefix[1:] != prefix[:-1]).any(1)
            node = np.cumsum(new) - 1  # node id at depth t+1
            child_parent = parent[new]
            bounds = np.searchsorted(child_parent, np.arange(parents_count + 1))
            indptr.append(bounds.astype(np.int64))
            child_code.append(codes[new, t].astype(np.int64))
            parent, parents_count = node, int(new.sum())
        if parents_count != len(codes):
            raise ValueError("semantic IDs are not unique: the trie needs one leaf per item")
        return cls(list(codebook_sizes), indptr, child_code, item_ids.astype(np.int64))

    @property
    def levels(self) -> int:
        return len(self.codebook_sizes)

    def nodes(self, depth: int) -> int:
        return len(self.indptr[depth]) - 1 if depth < self.levels else len(self.leaf_item)

    def dense_next(self, step: int) -> np.ndarray:
        """[nodes_step, V_step]: child node id at depth step+1, -1 where no item has the prefix."""
        table = np.full((self.nodes(step), self.codebook_sizes[step]), -1, dtype=np.int64)
        ptr = self.indptr[step]
        parents = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
        table[parents, self.child_code[step]] = np.arange(len(parents))
        return table

    def valid_children(self, step: int, node: int) -> np.ndarray:
        ptr = self.indptr[step]
        return self.child_code[step][ptr[node]: ptr[node + 1]]

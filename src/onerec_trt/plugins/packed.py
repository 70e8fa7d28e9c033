"""The trie as the plugins read it: every step's CSR arrays packed into one set of arrays.

Built from a ``model.trie.Trie`` or from the per-level CSR arrays a standard-op graph holds (the
``csr`` beam step's constants), so a graph can be swapped without its model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PackedTrie:
    indptr: np.ndarray  # [sum_t (nodes_t + 1)] int64
    child_code: np.ndarray  # [sum_t nodes_{t+1}] int64
    offsets: np.ndarray  # [2, L + 1] int64
    leaf_item: np.ndarray  # [nodes_L] int64
    codebook_sizes: list[int]

    @classmethod
    def from_csr(cls, indptr: list[np.ndarray], child_code: list[np.ndarray],
                 leaf_item: np.ndarray, codebook_sizes: list[int]) -> PackedTrie:
        levels = len(indptr)
        if len(child_code) != levels or len(codebook_sizes) != levels:
            raise ValueError("indptr, child_code and codebook_sizes need one entry per level")
        offsets = np.zeros((2, levels + 1), dtype=np.int64)
        offsets[0, 1:] = np.cumsum([len(p) for p in indptr])
        offsets[1, 1:] = np.cumsum([len(c) for c in child_code])
        packed = cls(np.concatenate(indptr).astype(np.int64),
                     np.concatenate(child_code).astype(np.int64), offsets,
                     np.asarray(leaf_item, dtype=np.int64), [int(v) for v in codebook_sizes])
        packed.validate()
        return packed

    @classmethod
    def from_trie(cls, trie) -> PackedTrie:
        """From ``onerec_trt.model.trie.Trie``."""
        return cls.from_csr(trie.indptr, trie.child_code, trie.leaf_item, trie.codebook_sizes)

    @property
    def levels(self) -> int:
        return len(self.codebook_sizes)

    def nodes(self, depth: int) -> int:
        if depth == self.levels:
            return len(self.leaf_item)
        return int(self.offsets[0, depth + 1] - self.offsets[0, depth] - 1)

    def step_arrays(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(indptr_t, child_code_t) of one step, unpacked."""
        o = self.offsets
        return (self.indptr[o[0, step]: o[0, step + 1]],
                self.child_code[o[1, step]: o[1, step + 1]])

    def validate(self) -> None:
        """Raise ValueError unless the arrays form a trie the kernels can read."""
        for t in range(self.levels):
            ptr, codes = self.step_arrays(t)
            if ptr[0] != 0 or ptr[-1] != len(codes) or (np.diff(ptr) < 0).any():
                raise ValueError(f"step {t}: indptr is not a CSR row-pointer array")
            if len(codes) and (codes.min() < 0 or codes.max() >= self.codebook_sizes[t]):
                raise ValueError(f"step {t}: child codes outside [0, {self.codebook_sizes[t]})")
            inner = np.diff(codes) > 0
            row_start = np.zeros(len(codes), dtype=bool)
            row_start[ptr[:-1][np.diff(ptr) > 0]] = True
            if not (inner | row_start[1:]).all():
                raise ValueError(f"step {t}: child codes are not ascending within a node")
            if self.nodes(t + 1) != len(codes):
                raise ValueError(f"step {t}: {len(codes)} children but {self.nodes(t + 1)} "
                                 f"nodes at depth {t + 1}")
        if self.offsets[0, 1] != 2:
            raise ValueError("depth 0 must be one root node")
        if self.offsets.max() >= 2 ** 31 or self.indptr.max(initial=0) >= 2 ** 31:
            raise ValueError("trie too large for int32 kernel offsets")

    def arrays(self) -> dict[str, np.ndarray]:
        return {"indptr": self.indptr, "child_code": self.child_code, "offsets": self.offsets,
                "leaf_item": self.leaf_item}

"""Dense item vocabulary: the user's item ids (any strings) <-> model ids 1..n (0 = padding)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onerec_trt.artifacts import read_json, write_json
from onerec_trt.errors import user_error

PAD = 0


@dataclass
class ItemVocab:
    """Item tokens in model-id order: ``tokens[i - 1]`` is the original id of model item ``i``."""

    tokens: list[str]
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {tok: i + 1 for i, tok in enumerate(self.tokens)}
        if len(self._index) != len(self.tokens):
            raise user_error("item vocabulary has duplicate tokens")

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def num_items(self) -> int:
        return len(self.tokens)

    def add(self, token: str) -> int:
        idx = self._index.get(token)
        if idx is None:
            self.tokens.append(token)
            idx = self._index[token] = len(self.tokens)
        return idx

    def encode(self, tokens: Iterable[str], unknown: list[str] | None = None) -> np.ndarray:
        """Map original ids to model ids; unknown tokens are collected in ``unknown`` (not dropped
        silently) and left out of the result."""
        out = []
        for tok in tokens:
            idx = self._index.get(str(tok))
            if idx is None:
                if unknown is None:
                    raise user_error(f"unknown item id {tok!r}: not in the model's vocabulary")
                unknown.append(str(tok))
            else:
                out.append(idx)
        return np.asarray(out, dtype=np.int64)

    def decode(self, ids: Sequence[int] | np.ndarray) -> list[str | None]:
        return [self.tokens[i - 1] if 0 < i <= len(self.tokens) else None for i in ids]

    def save(self, path: str | Path) -> None:
        write_json(path, {"num_items": len(self.tokens), "tokens": self.tokens})

    @classmethod
    def load(cls, path: str | Path) -> ItemVocab:
        data = read_json(path, "item vocabulary")
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise user_error(f"item vocabulary has no 'tokens' list: {path}")
        count = data.get("num_items", len(data["tokens"]))
        if count != len(data["tokens"]):
            raise user_error(f"item vocabulary {path} says num_items {count} but lists "
                             f"{len(data['tokens'])} tokens", "the file is damaged: copy the "
                                                              "model folder again")
        return cls([str(t) for t in data["tokens"]])

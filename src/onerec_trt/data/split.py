"""Leave-one-out split: last item = test target, second-to-last = validation, rest = training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_SEQUENCE = 3  # one training item, one validation target, one test target
MIN_ITEMS = 3  # a model's catalogue: export traces an example history of item ids 1..3

SPLITS = ("valid", "test")


@dataclass
class LeaveOneOut:
    train: list[np.ndarray]  # per user: every item but the last two, in time order
    valid_targets: np.ndarray  # [U]
    test_targets: np.ndarray  # [U]

    @classmethod
    def from_sequences(cls, sequences: list[np.ndarray]) -> LeaveOneOut:
        short = [i for i, s in enumerate(sequences) if len(s) < MIN_SEQUENCE]
        if short:
            raise ValueError(f"{len(short)} sequences shorter than {MIN_SEQUENCE}")
        return cls(
            train=[s[:-2] for s in sequences],
            valid_targets=np.array([s[-2] for s in sequences], dtype=np.int64),
            test_targets=np.array([s[-1] for s in sequences], dtype=np.int64),
        )

    @property
    def num_users(self) -> int:
        return len(self.train)

    def histories(self, split: str) -> list[np.ndarray]:
        """What the model sees for a split: training items (valid), training + valid item (test)."""
        if split == "valid":
            return self.train
        if split == "test":
            return [np.append(s, v) for s, v in zip(self.train, self.valid_targets, strict=True)]
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")

    def targets(self, split: str) -> np.ndarray:
        if split == "valid":
            return self.valid_targets
        if split == "test":
            return self.test_targets
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def pad_histories(histories: list[np.ndarray], length: int) -> np.ndarray:
    """Left-pad (0) or truncate to the last ``length`` items: the most recent item is last."""
    out = np.zeros((len(histories), length), dtype=np.int64)
    for row, seq in enumerate(histories):
        seq = seq[-length:]
        if len(seq):
            out[row, length - len(seq):] = seq
    return out

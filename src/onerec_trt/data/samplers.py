"""Seeded samples of users, and their histories padded to a model's history length.

Every stage that needs users draws them here: evaluation and verification (held-out users of a
split), calibration and analysis (training histories: never a validation or test target), the
Triton load test (a pool of held-out histories).
"""

from __future__ import annotations

import numpy as np

from onerec_trt.data.split import LeaveOneOut, pad_histories
from onerec_trt.errors import user_error


def sample_users(count: int, sample: int | None, seed: int = 0) -> np.ndarray:
    """A fixed, sorted random sample of user indices (all users when ``sample`` is None)."""
    if sample is not None and sample <= 0:
        raise user_error(f"--users must be positive, got {sample}")
    if sample is None or sample >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, sample, replace=False))


def held_out(split: LeaveOneOut, which: str, users: int | None, length: int,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """([n, length] histories, [n] targets) of a seeded sample of ``which``'s users."""
    chosen = sample_users(split.num_users, users, seed)
    if len(chosen) == 0:
        raise user_error("the user sample is empty")
    histories = split.histories(which)
    return (pad_histories([histories[i] for i in chosen], length),
            split.targets(which)[chosen])


def training_histories(split: LeaveOneOut, users: int, length: int,
                       seed: int = 0) -> np.ndarray:
    """[n, length] training parts of a seeded sample of users (calibration, analysis)."""
    chosen = sample_users(split.num_users, users, seed)
    return pad_histories([split.train[i] for i in chosen], length)

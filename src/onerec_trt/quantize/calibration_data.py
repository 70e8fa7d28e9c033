"""Calibration inputs: real users' training histories (never validation or test targets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onerec_trt.data import pad_histories
from onerec_trt.errors import user_error
from onerec_trt.evaluate import sample_users


def calibration_histories(opts, bundle) -> tuple[np.ndarray, str]:
    """[users, S] int64 histories for calibration, and where they came from."""
    length = bundle.config.max_history
    if opts.calib_data:
        return _from_file(Path(opts.calib_data), length, bundle.config.num_items), opts.calib_data
    data = bundle.load_data(opts.dataset, opts.data, opts.columns)
    split = data.split()
    users = sample_users(split.num_users, opts.calib_users, opts.seed)
    hist = pad_histories([split.train[i] for i in users], length)
    return hist, f"{data.name} training split, {len(users)} users (seed {opts.seed})"


def _from_file(path: Path, length: int, num_items: int) -> np.ndarray:
    if not path.is_file():
        raise user_error(f"calibration data not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise user_error(f"{path} is not a .npy array: {exc}") from None
    if arr.ndim != 2 or arr.shape[1] != length or arr.shape[0] == 0:
        raise user_error(f"calibration data has shape {list(arr.shape)}",
                         f"expected [users, {length}] item ids (the model's history length)")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise user_error(f"calibration data {path} contains NaN or inf",
                             "expected integer item ids, 0 for padding")
        if (arr != np.round(arr)).any():
            raise user_error(f"calibration data {path} has non-integer values",
                             "expected integer item ids, 0 for padding")
    elif arr.dtype.kind not in "iu":
        raise user_error(f"calibration data {path} has dtype {arr.dtype}", "expected integers")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() > num_items:
        raise user_error(f"calibration data {path} has item ids outside 0..{num_items}")
    if (arr == 0).all(axis=1).any():
        raise user_error(f"calibration data {path} has all-padding rows")
    return arr

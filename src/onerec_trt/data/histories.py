"""Histories from a file: ``.npy`` int64 [N, S] model item ids, 0 = left padding.

What ``--histories`` (verify, bench, quantize, analyze) and ``--calib-data`` read where no
dataset is given (a model from ``init``, or a user's own request log). Checked here so every
stage says the same thing about a bad file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onerec_trt.data.readers import require_file
from onerec_trt.errors import user_error


def load_histories(path: str | Path, length: int, num_items: int,
                   option: str = "--histories") -> np.ndarray:
    """The file's histories as int64 [N, length]; a user error for anything else."""
    path = require_file(path, option)  # missing, a folder, unreadable, empty: one line each
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise user_error(f"{option} {path} is not a .npy array: {exc}") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        arr.close()
        raise user_error(f"{option} {path} is an .npz archive, not a .npy array",
                         "save one array with numpy.save")
    expected = f"expected int64 [users, {length}] model item ids (the model's history length), " \
               "0 for left padding"
    if arr.ndim != 2 or arr.shape[1] != length or arr.shape[0] == 0:
        raise user_error(f"{option} {path} has shape {list(arr.shape)}", expected)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise user_error(f"{option} {path} contains NaN or inf", expected)
        if (arr != np.round(arr)).any():
            raise user_error(f"{option} {path} has non-integer values", expected)
    elif arr.dtype.kind not in "iu":
        raise user_error(f"{option} {path} has dtype {arr.dtype}", expected)
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() > num_items:
        bad = int(arr.max()) if arr.max() > num_items else int(arr.min())
        raise user_error(f"{option} {path} has item id {bad} outside the catalogue 0..{num_items}",
                         expected)
    if (arr == 0).all(axis=1).any():
        raise user_error(f"{option} {path} has all-padding rows", expected)
    return arr

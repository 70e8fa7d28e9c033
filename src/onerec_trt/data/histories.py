"""Histories from a file: ``.npy`` int64 [N, S] model item ids, left-padded with 0.

What ``--histories`` (verify, bench, quantize, analyze) and ``--calib-data`` read where no
dataset is given (a model from ``init``, or a user's own request log). Checked here so every
stage says the same thing about a bad file, and by the rule the Triton guard applies to a
request (``history_problem``): a history the server refuses is refused here too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onerec_trt.data.memory import require_memory
from onerec_trt.data.readers import require_file
from onerec_trt.data.vocab import PAD
from onerec_trt.errors import user_error


def history_problem(history: np.ndarray, num_items: int) -> str | None:
    """None if ``history`` [N, S] holds valid requests, else why not, naming the first bad row.

    The rule of the Triton guard (``triton/backend/guard.py``, which must stay a standalone
    file for Triton's python stub): ids in 0..num_items, at least one item a row, and left
    padding only (no 0 after an item: a right-padded row would score differently)."""
    bad = (history < PAD) | (history > num_items)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        return (f"row {row}: item id {int(history[row, col])} is outside the catalogue "
                f"(valid ids 1..{num_items}, {PAD} = padding)")
    items = history != PAD
    empty = ~items.any(axis=1)
    if empty.any():
        return (f"row {int(np.argmax(empty))}: the history is all padding; "
                "send at least one item id")
    late_pad = (np.cumsum(items, axis=1) > 0) & ~items
    if late_pad.any():
        row = int(np.argwhere(late_pad)[0][0])
        return (f"row {row}: padding ({PAD}) after an item id; histories are left-padded "
                "(zeros first, most recent item last)")
    return None


def load_histories(path: str | Path, length: int, num_items: int,
                   option: str = "--histories") -> np.ndarray:
    """The file's histories as int64 [N, length]; a user error for anything else."""
    path = require_file(path, option)  # missing, a folder, unreadable, empty: one line each
    expected = f"expected int64 [users, {length}] model item ids (the model's history length), " \
               "0 for left padding"
    shape, dtype = _checked_header(path, length, option, expected)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise user_error(f"{option} {path} is not a .npy array: {exc}") from None
    if dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise user_error(f"{option} {path} contains NaN or inf", expected)
        if (arr != np.round(arr)).any():
            raise user_error(f"{option} {path} has non-integer values", expected)
    arr = arr.astype(np.int64)
    problem = history_problem(arr, num_items)
    if problem:
        raise user_error(f"{option} {path}: {problem}", expected)
    return arr


def _checked_header(path: Path, length: int, option: str,
                    expected: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the .npy header, checked (shape, dtype, the memory it would take,
    a truncated file) before any data is read."""
    shape, dtype, offset = _read_header(path, option)
    if len(shape) != 2 or shape[1] != length or shape[0] == 0:
        raise user_error(f"{option} {path} has shape {list(shape)}", expected)
    if dtype.kind not in "iuf":
        raise user_error(f"{option} {path} has dtype {dtype}", expected)
    count = int(np.prod(shape, dtype=np.float64))
    require_memory(count * (dtype.itemsize + 8),  # the array and its int64 copy
                   f"{option} {path} ({dtype} {list(shape)})", "pass fewer histories")
    held = path.stat().st_size - offset
    if held < count * dtype.itemsize:
        raise user_error(f"{option} {path} is truncated: its header declares {dtype} "
                         f"{list(shape)} ({count * dtype.itemsize:,} bytes), the file holds "
                         f"{held:,} bytes of data", expected)
    return shape, dtype


def _read_header(path: Path, option: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, where the data begins) of a .npy file, from its header alone (numpy's
    format module)."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        if f.read(2) == b"PK":
            raise user_error(f"{option} {path} is an .npz archive, not a .npy array",
                             "save one array with numpy.save")
        f.seek(0)
        try:
            version = fmt.read_magic(f)
            read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(
                version)
            if read is None:
                raise ValueError(f".npy format version {version[0]}.{version[1]} "
                                 "(expected 1.0 or 2.0, what numpy.save writes)")
            shape, _, dtype = read(f)
        except (ValueError, OSError, EOFError) as exc:
            raise user_error(f"{option} {path} is not a .npy array: {exc}") from None
        offset = f.tell()
    return tuple(int(n) for n in shape), np.dtype(dtype), offset

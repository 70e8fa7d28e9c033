"""Safetensors files read with checks: ``safetensors_header`` refuses a truncated, random or
foreign file in one line before any reader opens it; ``read_weights`` converts while reading.
Every loader (native, imported, the import stage's weight files) uses these."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from onerec_trt.errors import user_error

SAFETENSORS_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16,
                      "I64": torch.int64, "I32": torch.int32, "BOOL": torch.bool}


# bytes per element of every safetensors dtype (the format's own list)
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8,
               "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
DAMAGED = "the file is damaged or truncated: copy the model folder again"
MAX_HEADER = 100_000_000  # the safetensors reader's own limit on a header


def safetensors_header(path: str | Path) -> dict[str, dict]:
    """The tensors a safetensors file holds (name -> dtype, shape, data_offsets), checked
    against the file's size without reading the data: a user error for a truncated, random or
    foreign file instead of the reader's own message."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 2 <= length <= min(size - 8, MAX_HEADER):
            raise user_error(f"{path} is truncated or not a safetensors file ({size:,} bytes, "
                             "no complete header)", DAMAGED)
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            header = None
    if not isinstance(header, dict):
        raise user_error(f"{path} is not a safetensors file (its header is not a JSON object)",
                         DAMAGED)
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    end = max((_tensor_end(path, name, info) for name, info in tensors.items()), default=0)
    if 8 + length + end > size:
        raise user_error(f"{path} is truncated: its tensors need {8 + length + end:,} bytes, "
                         f"the file has {size:,}", DAMAGED)
    return tensors


def _tensor_end(path: Path, name: str, info: object) -> int:
    """Where one header entry's data ends (relative to the data), once its fields agree."""
    ok = isinstance(info, dict) and info.get("dtype") in DTYPE_BYTES
    shape, offsets = (info.get("shape"), info.get("data_offsets")) if ok else (None, None)
    ok = ok and isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)
    ok = ok and isinstance(offsets, list) and len(offsets) == 2 and all(
        isinstance(o, int) and o >= 0 for o in offsets)
    if ok:
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        ok = offsets[1] - offsets[0] == count * DTYPE_BYTES[info["dtype"]]
    if not ok:
        raise user_error(f"{path} is not a valid safetensors file: the entry of tensor "
                         f"{name!r} is malformed", DAMAGED)
    return offsets[1]


def read_weights(path: Path, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The state dict in a safetensors file; with ``dtype``, each floating tensor is read with
    plain file reads (no memory map) and converted at once, so the file's dtype never exists in
    memory as a whole: a 1B-parameter fp32 model loads into bf16 holding one fp32 tensor at a
    time."""
    if dtype is None:
        return load_file(str(path))
    out = {}
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
        base = 8 + size
        for key, info in header.items():
            if key == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            raw = torch.empty(end - begin, dtype=torch.uint8)
            handle.seek(base + begin)
            handle.readinto(memoryview(raw.numpy()))
            tensor = raw.view(SAFETENSORS_DTYPES[info["dtype"]]).reshape(info["shape"])
            out[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
            del raw, tensor
    return out

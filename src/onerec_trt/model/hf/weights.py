"""A checkpoint's weight files, checked before transformers opens any of them.

transformers reads ``model.safetensors``, or the shards ``model.safetensors.index.json`` names.
Every shard must be a safetensors file in the folder itself: an index naming a pickle (``.bin``,
``.pt``) is refused, so nothing is ever unpickled, and every file the loader reads is one the
import copies. Each file's header is checked against its size (a truncated or garbled file, or
a header claiming more bytes than the file has, is one line, not the reader's traceback).
"""

from __future__ import annotations

import json
from pathlib import Path

from onerec_trt.errors import user_error
from onerec_trt.model.safetensors_file import safetensors_header

SINGLE, INDEX = "model.safetensors", "model.safetensors.index.json"
PICKLES = "pickled weights (.bin, .pt) are never loaded: convert them to safetensors"


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files transformers will read (``model.safetensors`` where there is one,
    else the index's shards), each header checked."""
    single = folder / SINGLE
    files = _shards(folder) if (folder / INDEX).is_file() and not single.is_file() else [single]
    if not files[0].is_file():
        found = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth"))
        raise user_error(f"{folder} has no {SINGLE} (nor {INDEX})",
                         PICKLES if found else "save the weights with save_pretrained "
                                                "(safetensors)")
    for path in files:
        safetensors_header(path)
    return files


def _shards(folder: Path) -> list[Path]:
    """The shards the index names: plain file names of ``.safetensors`` files in ``folder``."""
    path = folder / INDEX
    try:
        index = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise user_error(f"{path} is not valid JSON ({exc})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map or \
            not all(isinstance(v, str) for v in weight_map.values()):
        raise user_error(f"{path} has no 'weight_map' of tensor names to shard files")
    names = sorted(set(weight_map.values()))
    for name in names:
        if not name.endswith(".safetensors"):
            raise user_error(f"{path} names the shard {name!r}, not a safetensors file", PICKLES)
        if Path(name).name != name or not (folder / name).is_file():
            raise user_error(f"{path} names the shard {name!r}, which is not a file in {folder}")
    return [folder / name for name in names]

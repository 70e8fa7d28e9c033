"""Atomic file writes, content hashes and the manifest every artifact folder carries."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from onerec_trt import __version__
from onerec_trt.errors import user_error

MANIFEST = "manifest.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary name beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files: give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise user_error(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise user_error(f"{what} is not valid JSON: {path} ({exc})") from None


def json_object(path: str | Path) -> dict:
    """A JSON object from ``path``, or {} where the file is missing or holds something else
    (for optional records: a manifest, training.json)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


@contextmanager
def staged_folder(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it replaces ``out`` in one rename.

    An existing ``out`` is refused unless ``force``; on failure nothing is left behind.
    """
    out = Path(out)
    if out.exists() and not force:
        raise user_error(f"output folder already exists: {out}", "pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old.{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_manifest(folder: str | Path, stage: str, options: dict[str, Any],
                   inputs: dict[str, str] | None = None, **extra: Any) -> Path:
    """Record what made an artifact folder: stage, options, input hashes, versions, file hashes."""
    folder = Path(folder)
    files = {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {
        "stage": stage,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "onerec_trt": __version__,
        "command": " ".join(["onerec-trt", *sys.argv[1:]]) if sys.argv else None,
        "options": options,
        "inputs": inputs or {},
        "versions": package_versions(),
        "platform": platform.platform(),
        "files": files,
        **extra,
    }
    return write_json(folder / MANIFEST, manifest)


def package_versions(names: tuple[str, ...] = ("torch", "numpy", "onnx", "onnxruntime",
                                                "modelopt", "polygraphy")) -> dict[str, str]:
    import importlib.metadata as md

    dists = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "modelopt": ("nvidia-modelopt",)}
    versions = {"python": platform.python_version()}
    for name in names:
        for dist in dists.get(name, (name,)):
            try:
                versions[name] = md.version(dist)
                break
            except md.PackageNotFoundError:
                continue
    return versions

"""Atomic file writes, content hashes and the manifest every artifact folder carries."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from onerec_trt import __version__
from onerec_trt.errors import UserError, disk_error, user_error

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


_STAGED: dict[Path, Path] = {}  # staged folder -> the output it becomes: named in messages


def _shown(path: str | Path) -> Path:
    """``path``, or where it will be once its staged folder is renamed into place."""
    path = Path(path)
    for tmp, out in _STAGED.items():
        if path.is_relative_to(tmp):
            return out / path.relative_to(tmp)
    return path


@contextmanager
def _disk_errors_reported(target: Path, by_filename: bool = False) -> Iterator[None]:
    """A full disk (``DISK_ERRORS``) while writing ``target`` becomes one user error line,
    naming the file the error names where ``by_filename`` and it has one."""
    try:
        yield
    except UserError:
        raise  # already one line (an inner write_atomic named its file)
    except Exception as exc:
        reason = disk_error(exc)
        if reason is None:
            raise
        name = getattr(exc, "filename", None) if by_filename else None
        where = _shown(name if isinstance(name, str) and name else target)
        raise user_error(f"could not write {where}: {reason}",
                         "free some space or write elsewhere, then run again (nothing was "
                         "replaced)") from None


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary name beside ``path``, then rename it into place (a
    full disk: a user error, ``path`` as it was)."""
    path = Path(path)
    with _disk_errors_reported(path):
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
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise user_error(f"{what} is not UTF-8 text: {path} (byte {exc.start})",
                         "JSON files are UTF-8: pass the file the stage wrote") from None
    except json.JSONDecodeError as exc:
        raise user_error(f"{what} is not valid JSON: {path} ({exc})") from None
    except OSError as exc:
        raise user_error(f"cannot read {what} {path}: {exc.strerror}") from None


def json_object(path: str | Path) -> dict:
    """A JSON object from ``path``, or {} where the file is missing or holds something else
    (for optional records: a manifest, training.json)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: not JSON, not UTF-8
        return {}
    return data if isinstance(data, dict) else {}


def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(path)).resolve()


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable(path: str | Path, flag: str) -> None:
    """Refuse an output ``path`` where the nearest existing ancestor of its parent is not a
    folder this process can create entries in: a real probe (a temporary folder made and
    removed), since permission bits say nothing for root or on a read-only mount."""
    base = _nearest_existing(_resolved(path).parent)
    if not base.is_dir():
        raise user_error(f"{flag} {path}: {base} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".onerec-probe.", dir=base))
    except OSError as exc:
        raise user_error(f"{flag} {path}: cannot write in {base} ({exc.strerror})",
                         "choose an output in a folder you can write to") from None


def _check_target(out: Path, force: bool, flag: str = "--out") -> Path:
    """The checks every output folder needs, whoever writes it: not a file, not the current
    folder (or one holding it), and not an existing folder unless ``force``. Returns ``out``
    resolved."""
    resolved = _resolved(out)
    if resolved.exists() and not resolved.is_dir():
        raise user_error(f"{flag} {out} is a file, not a folder",
                         "a stage writes a folder: choose another name (--force never "
                         "replaces a file)")
    if resolved.exists() and not force:
        raise user_error(f"output folder already exists: {out}", "pass --force to replace it")
    if Path.cwd().resolve().is_relative_to(resolved):
        raise user_error(f"{flag} {out} is the current folder or holds it",
                         "name a new folder, e.g. --out ./out")
    return resolved


def _relation(out: Path, source: Path) -> str | None:
    if out == source:
        return "is"
    if source.is_relative_to(out):
        return "contains"
    if out.is_relative_to(source):
        return "lies inside"
    return None


# Options (dataclass fields and CLI arguments of these names, in every stage) that name a file or
# folder the stage reads: --force must not replace one, --json not overwrite one. An options
# dataclass declares another field an input with ``field(metadata={"input": True})``.
INPUT_FIELDS = ("model", "data", "histories", "onnx", "fp8", "plugins", "engines",
                "engine", "reference", "candidate", "exclusions", "calibration", "policy",
                "timing_cache", "plugin_library", "repo", "hf", "catalogue")


def _is_options(value: object) -> bool:
    return isinstance(value, argparse.Namespace) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type))


def input_fields(options: object) -> list[str]:
    """The names of the input options of ``options`` (``INPUT_FIELDS`` and declared ones)."""
    names = list(INPUT_FIELDS)
    if dataclasses.is_dataclass(options):
        names += [f.name for f in dataclasses.fields(options)
                  if f.metadata.get("input") and f.name not in names]
    return names


def inputs_of(options: object) -> list[str]:
    """The files and folders a stage reads, from its options (an options dataclass or the CLI's
    parsed arguments): each input option's value (lists flattened), the model's folder
    (``default``: the shipped one) and the data file its ``training.json`` records (what a
    stage reads where no ``--data`` is given)."""
    paths: list[str] = []
    for name in input_fields(options):
        value = getattr(options, name, None)
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, str | Path) and str(item):
                paths += _model_inputs(item) if name == "model" else [str(item)]
    return paths


def _model_inputs(model: str | Path) -> list[str]:
    """A ``--model``'s folder and the training data it records."""
    from onerec_trt.layout import SHIPPED_MODELS, TRAINING_JSON

    folder = SHIPPED_MODELS.get(str(model), Path(model))  # model.checkpoint.resolve_model_path
    data = json_object(folder / TRAINING_JSON).get("data")
    return [str(folder), *([data] if isinstance(data, str) and data else [])]


def input_paths(inputs: object) -> list[Path]:
    """The existing paths among ``inputs`` (paths, None and '' skipped, or options objects:
    their ``inputs_of``), resolved."""
    if _is_options(inputs):
        inputs = [inputs]
    paths: list[str | Path] = []
    for item in inputs or ():
        paths += inputs_of(item) if _is_options(item) else [item] if item else []
    return [_resolved(p) for p in paths if _resolved(p).exists()]


def _refuse_inputs(resolved: Path, out: str | Path, inputs: object, flag: str) -> None:
    """Refuse an output folder that is, contains or lies inside one of ``inputs``."""
    for source in input_paths(inputs):
        relation = _relation(resolved, source)
        if relation:
            raise user_error(f"{flag} {out} {relation} an input of this command: {source}",
                             "--force would delete it: write the output elsewhere")


def check_out(out: str | Path, inputs: object = (), force: bool = False,
              flag: str = "--out") -> Path:
    """Refuse, before any work, an output folder the stage could not write or must not replace.

    ``out`` must not be a file, nor (without ``force``) exist; with ``force`` it must not be,
    contain or lie inside any of ``inputs`` (paths, or the stage's options: ``inputs_of``;
    what replacing ``out`` would delete); its parent must be writable. Returns ``out``
    resolved.
    """
    resolved = _check_target(Path(out), force, flag)
    if force:
        _refuse_inputs(resolved, out, inputs, flag)
    _check_writable(out, flag)
    return resolved


def check_file_out(path: str | Path, inputs: object = (), flag: str = "--json") -> Path:
    """Refuse, before any work, an output file that is a folder, would overwrite one of
    ``inputs`` (or a file in an input folder) or lies where nothing can be written. Returns
    ``path`` resolved. ``inputs`` as for ``check_out``."""
    resolved = _resolved(path)
    if resolved.is_dir():
        raise user_error(f"{flag} {path} is a folder", "give a file name, e.g. report.json")
    for source in input_paths(inputs):
        if resolved == source or (resolved.exists() and resolved.is_relative_to(source)):
            raise user_error(f"{flag} {path} would overwrite an input of this command: {source}",
                             "choose another file")
    _check_writable(path, flag)
    return resolved


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _leftovers(out: Path) -> Iterator[Path]:
    """Staged (``.NAME.PID.XXXX.partial``) and replaced (``.NAME.PID.old``) folders of ``out``
    whose process is gone: a run killed before it could clean up."""
    name = re.compile(rf"^\.{re.escape(out.name)}\.(\d+)\.(?:[a-z0-9_]+\.partial|old)$")
    if not out.parent.is_dir():
        return
    for path in out.parent.iterdir():
        match = name.match(path.name)
        if match and (path.is_dir() or path.is_symlink()) and not _alive(int(match[1])):
            yield path


def _remove(path: Path) -> None:
    """Remove a folder, or a symbolic link (never what it points to)."""
    if path.is_symlink():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back for a few renames, so no stop falls between them."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` goes aside first and is removed after."""
    old = None
    with _signals_deferred():
        if out.exists() or out.is_symlink():
            old = out.with_name(f".{out.name}.{os.getpid()}.old")
            os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            if old is not None:
                os.replace(old, out)
            raise
    if old is not None:
        _remove(old)  # a symbolic link --out: the link, not its target


@contextmanager
def staged_folder(out: str | Path, force: bool = False, inputs: object = ()) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it replaces ``out`` in one rename.

    An existing ``out`` is refused unless ``force`` (a file always), and with ``force`` one
    that is, contains or lies inside one of ``inputs`` (paths, or the stage's options:
    ``inputs_of``), so a Python caller gets the CLI's refusal. On failure, Ctrl-C or SIGTERM
    nothing is left behind (a full disk: a user error naming the file); the leftovers of killed
    runs (``.NAME.PID.*``, their process gone) are removed first.
    """
    resolved = _check_target(Path(out), force)
    if force:
        _refuse_inputs(resolved, out, inputs, "--out")
    out = Path(os.path.abspath(out))  # renamed as given: a symbolic link is replaced, not followed
    with _disk_errors_reported(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        for leftover in _leftovers(out):
            _remove(leftover)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".partial",
                                    dir=out.parent))
    _STAGED[tmp] = out
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        with _disk_errors_reported(out, by_filename=True):
            yield tmp
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _STAGED.pop(tmp, None)


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

"""Stage reports: each stage returns a dataclass and writes it as one JSON file.

``Report`` gives a dataclass ``to_json`` / ``from_json`` (and ``save`` / ``load``), so a later
stage, ``onerec-trt run`` and the tests read attributes, not nested keys. JSON keys that are
not Python names (``recall@10``) are mapped by ``JSON_NAMES``; nested values stay plain JSON.
A stage's report also names its stage and file (``STAGE``, ``FILE``): ``read_stage(folder,
ExportReport)`` is how any stage reads another stage's folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from onerec_trt.errors import user_error

R = TypeVar("R", bound="Report")


class Report:
    """Mix into a ``@dataclass``: its fields are the report's JSON keys, in order."""

    JSON_NAMES: ClassVar[dict[str, str]] = {}  # attribute -> JSON key, where they differ
    STAGE: ClassVar[str] = ""  # the stage that writes it, as its manifest records it
    FILE: ClassVar[str] = ""  # its file name in that stage's folder
    COMMAND: ClassVar[str] = ""  # the command that writes it, where not ``STAGE``

    def to_json(self) -> dict[str, Any]:
        names = self.JSON_NAMES
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value = value.to_json() if isinstance(value, Report) else dataclasses.asdict(value)
            out[names.get(f.name, f.name)] = value
        return out

    @classmethod
    def from_json(cls: type[R], data: Any, what: str | None = None) -> R:
        what = what or cls.__name__
        if not isinstance(data, dict):
            raise user_error(f"{what} is not a JSON object")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values, missing = {}, []
        for name, f in fields.items():
            key = cls.JSON_NAMES.get(name, name)
            if key in data:
                values[name] = data[key]
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                missing.append(key)
        if missing:
            raise user_error(f"{what} lacks {', '.join(missing)}",
                             "it was written by another version: rerun that stage")
        report = cls(**values)
        report.check(what)
        return report

    def check(self, what: str) -> None:
        """Raise a user error where the values read make no sense (reports override it)."""

    def save(self, path: str | Path) -> Path:
        from onerec_trt.artifacts import write_json

        return write_json(path, self.to_json())

    @classmethod
    def load(cls: type[R], path: str | Path, what: str | None = None) -> R:
        from onerec_trt.artifacts import read_json

        what = what or f"{cls.__name__} {path}"
        return cls.from_json(read_json(path, what), what)


def _an(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def read_stage(folder: str | Path, report_type: type[R], flag: str | None = None) -> R:
    """The report of a stage's output folder, typed; a one-line user error where ``folder`` is
    missing, a file, another stage's folder (its manifest says so, or the report is absent) or
    holds a damaged report. ``flag``: the option that named the folder (``--onnx``), for the
    messages."""
    from onerec_trt.artifacts import json_object
    from onerec_trt.layout import MANIFEST

    folder, stage, name = Path(folder), report_type.STAGE, report_type.FILE
    command = report_type.COMMAND or stage
    if not stage or not name:
        raise TypeError(f"{report_type.__name__} names no STAGE and FILE: not a stage's report")
    if folder.is_file():
        raise user_error(f"{flag} takes the {stage} stage's folder, not a file: {folder}"
                         if flag else f"{folder} is a file, not the {stage} stage's folder",
                         f"pass {folder.parent}")
    if not folder.is_dir():
        raise user_error(f"{flag or stage} folder not found: {folder}",
                         f"run 'onerec-trt {command}' first")
    written_by = json_object(folder / MANIFEST).get("stage")
    if not isinstance(written_by, str):
        written_by = None
    if written_by == stage and not (folder / name).is_file():
        raise user_error(f"{flag + ' ' if flag else ''}{folder} lacks its {name}",
                         f"the folder is damaged: rerun 'onerec-trt {command}'")
    if written_by not in (None, stage) or not (folder / name).is_file():
        what = f"written by 'onerec-trt {written_by}'" if written_by else f"no {name}"
        raise user_error(f"{flag + ' ' if flag else ''}{folder} is not {_an(stage)} folder "
                         f"({what})", f"pass the folder 'onerec-trt {command}' wrote (its --out)")
    return report_type.load(folder / name, f"{stage} report {folder / name}")

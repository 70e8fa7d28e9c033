"""Every stage that writes a folder runs the same way: ``run_stage``.

Before any work ``--out`` is checked against the inputs its options dataclass declares
(``artifacts.inputs_of``: not a file, writable, new or ``force``, and with ``force`` never an
input or a folder holding one), so a stage called from Python is refused exactly where the
shell is. Then a staged folder is made beside ``--out`` (the leftovers of killed runs removed
first), the stage's body fills it and returns its report, and the runner writes the report and
the manifest (both atomically) before the folder replaces ``--out`` in one rename. A failure,
Ctrl-C or SIGTERM leaves nothing behind.

Stages say what they do through ``logging`` (a logger per module under ``onerec_trt``): a library
user sees nothing unless logging is configured (``logging.basicConfig(level=logging.INFO)``);
the CLI installs ``StdoutHandler`` so each message is one plain line on stdout.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from onerec_trt.artifacts import check_out, staged_folder, write_manifest
from onerec_trt.reports import Report

R = TypeVar("R")

log = logging.getLogger(__name__)


@dataclass
class StagedRun:
    """What a stage's body gets: the staged ``folder`` to fill, and the manifest's parts it may
    set (``options`` defaults to the options dataclass as a dict)."""

    stage: str
    folder: Path  # the staged (temporary) folder: write every file here
    out: Path  # where the folder will be once the stage succeeds
    options: dict[str, Any]
    inputs: dict[str, str] = field(default_factory=dict)  # manifest "inputs": name -> hash/path
    extra: dict[str, Any] = field(default_factory=dict)  # further manifest keys
    started: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        """Seconds since the stage started (before its ``--out`` checks)."""
        return time.perf_counter() - self.started


def check_stage_out(opts: Any, out: str | Path | None = None, inputs: object = None,
                    force: bool | None = None) -> Path:
    """The checks ``run_stage`` makes, for a stage's entry function to make first: before its
    other checks read any input, and before work done ahead of the staged folder (hours of
    training). ``out`` (default ``opts.out``) against ``inputs`` (default: the inputs ``opts``
    declares)."""
    out = opts.out if out is None else out
    force = bool(getattr(opts, "force", False)) if force is None else force
    return check_out(out, opts if inputs is None else inputs, force)


def run_stage(stage: str, opts: Any, body: Callable[[StagedRun], R], *,
              report: str | None = None, out: str | Path | None = None,
              inputs: object = None, force: bool | None = None,
              check: Callable[[Path], None] | None = None) -> R:
    """Run ``body`` in a staged folder that becomes ``out`` (default ``opts.out``) on success.

    ``body(run)`` writes its files into ``run.folder`` and returns the stage's result; where
    that is a ``Report`` and ``report`` names a file, the runner saves it there. The manifest
    (``stage``, ``run.options``, ``run.inputs``, ``run.extra``) is written last, so it hashes
    every file. ``inputs``: what replacing ``out`` must never delete (paths or options
    objects; default ``opts``, whose input fields are read); ``force`` defaults to
    ``opts.force``; ``check(folder)``: a last look at the finished folder (manifest included)
    before it replaces ``out``, raising to keep ``out`` as it was.
    """
    started = time.perf_counter()
    out = Path(opts.out if out is None else out)
    force = bool(getattr(opts, "force", False)) if force is None else force
    inputs = opts if inputs is None else inputs
    check_out(out, inputs, force)  # before any work: the same refusals as the shell's
    options = dataclasses.asdict(opts) if dataclasses.is_dataclass(opts) else dict(vars(opts))
    with staged_folder(out, force=force, inputs=inputs) as tmp:
        run = StagedRun(stage, tmp, out, options, started=started)
        result = body(run)
        if report is not None and isinstance(result, Report):
            result.save(tmp / report)
        write_manifest(tmp, stage, run.options, run.inputs, **run.extra)
        if check is not None:
            check(tmp)
    log.debug("%s: %s written in %.1fs", stage, out, time.perf_counter() - started)
    return result


class StdoutHandler(logging.Handler):
    """Each record's message, as it is, on the ``sys.stdout`` of the moment it is logged (so
    pytest's capsys and redirections see it): the CLI's lines are exactly what stages log."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stdout
            stream.write(record.getMessage() + "\n")
            stream.flush()
        except BrokenPipeError:
            raise
        except Exception:
            self.handleError(record)


def log_to_stdout(name: str = "onerec_trt") -> None:
    """What the CLI does once: INFO messages of ``name``'s loggers as plain lines on stdout."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, StdoutHandler) for h in logger.handlers):
        logger.addHandler(StdoutHandler())


@contextmanager
def quiet(name: str) -> Iterator[None]:
    """No INFO lines from logger ``name`` and its children (a stage run inside another, whose
    own line says what happened)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)

"""The one progress display: a tqdm bar on a terminal, a few plain lines anywhere else.

tqdm redraws its bar with ``\\r`` many times a second; written to a file or a pipe (a training
run's log, CI) that is thousands of frames, megabytes for a long run. ``progress_bar`` keeps the
bar when the stream is a terminal; otherwise it prints one line each time another tenth of the
work is done (and one at the end), or, where the total is unknown, one line every
``interval_s`` seconds and one at the end. Every stage shows progress through it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partialmethod
from typing import IO, Any

__all__ = ["progress_bar", "LineProgress", "is_terminal", "quiet_library_bars"]

EVERY = 0.1  # without a terminal: a line each time this fraction of the total is done
INTERVAL_S = 30.0  # without a terminal and without a total: at most one line this often


def is_terminal(stream: IO | None) -> bool:
    """Whether ``stream`` is a terminal (a closed or odd stream is not)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def progress_bar(iterable: Iterable | None = None, *, desc: str = "", total: float | None = None,
                 unit: str = "it", disable: bool = False, leave: bool = True,
                 file: IO | None = None, every: float = EVERY, interval_s: float = INTERVAL_S,
                 **tqdm_kwargs: Any):
    """``tqdm(iterable, ...)`` on a terminal; a ``LineProgress`` when ``file`` (default: stderr)
    is not one. Both iterate ``iterable`` and take ``update``, ``set_postfix`` and ``close``."""
    stream = sys.stderr if file is None else file
    if disable or is_terminal(stream):
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, leave=leave,
                    file=stream, **tqdm_kwargs)
    return LineProgress(iterable, desc=desc, total=total, unit=unit, file=stream, every=every,
                        interval_s=interval_s)


class LineProgress:
    """Progress as whole lines: at every ``every`` of ``total`` (and the end), or every
    ``interval_s`` seconds when there is no total. No ``\\r``, no redraws."""

    def __init__(self, iterable: Iterable | None = None, *, desc: str = "",
                 total: float | None = None, unit: str = "it", file: IO | None = None,
                 every: float = EVERY, interval_s: float = INTERVAL_S):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.desc, self.total, self.unit = iterable, desc, total, unit
        self.file = sys.stderr if file is None else file
        self.every, self.interval_s = every, interval_s
        self.n, self.postfix, self.closed = 0, "", False
        self._start = self._last_time = time.monotonic()
        self._shown_n = 0
        self._shown_mark = 0  # tenths (or ``every`` steps) already printed

    def __iter__(self) -> Iterator:
        try:
            for item in () if self.iterable is None else self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        if self.total:
            mark = int(min(self.n / self.total, 1.0) / self.every + 1e-9)
            if mark > self._shown_mark:
                self._shown_mark = mark
                self._show()
        elif time.monotonic() - self._last_time >= self.interval_s:
            self._show()

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True,
                    **kwargs: Any) -> None:
        """As tqdm's: shown as ``k=v`` after the count, in the next line printed."""
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def close(self) -> None:
        """The last line (unless the last update already printed it)."""
        if self.closed:
            return
        self.closed = True
        if self.n != self._shown_n or self.n == 0:
            self._show()

    def _show(self) -> None:
        elapsed = time.monotonic() - self._start
        done = f"{self.n:g}/{self.total:g} {self.unit}" if self.total else f"{self.n:g} {self.unit}"
        if self.total:
            done += f" ({100 * self.n / self.total:.0f}%)"
        rate = f", {self.n / elapsed:.3g} {self.unit}/s" if elapsed > 0 and self.n else ""
        extra = f", {self.postfix}" if self.postfix else ""
        head = f"{self.desc}: " if self.desc else ""
        self.file.write(f"{head}{done} in {elapsed:.0f}s{rate}{extra}\n")
        self.file.flush()
        self._shown_n, self._last_time = self.n, time.monotonic()


@contextmanager
def quiet_library_bars(file: IO | None = None) -> Iterator[None]:
    """Within the block, tqdm bars that libraries draw themselves (ModelOpt's "MSE weight
    calibration") are off unless ``file`` (default: stderr) is a terminal. tqdm reads its
    ``TQDM_*`` environment once, at import, so the default of ``disable`` is changed here."""
    if is_terminal(sys.stderr if file is None else file):
        yield
        return
    from tqdm import std

    original = vars(std.tqdm)["__init__"]
    std.tqdm.__init__ = partialmethod(original, disable=True)  # an explicit disable= wins
    try:
        yield
    finally:
        std.tqdm.__init__ = original

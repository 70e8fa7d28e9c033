"""One exception type for user mistakes; the CLI prints it as one line and exits non-zero.

Internal bugs are ordinary exceptions and keep their traceback.
"""

from __future__ import annotations

import errno
import os


class UserError(Exception):
    """A problem the user can fix: bad input, a missing file, contradictory options."""

    exit_code = 2

    def __init__(self, message: str, note: str | None = None):
        self.note = note
        super().__init__(message if note is None else f"{message}\nNote: {note}")


def user_error(message: str, note: str | None = None) -> UserError:
    """Build the user error (``raise user_error(...)``) so call sites read as one line."""
    return UserError(message, note)


# Why a write can fail that the user must fix (free space, a quota, a read-only mount, a file
# size limit): reported as one line, not as a traceback
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)


def disk_error(exc: BaseException) -> str | None:
    """The reason (``strerror``) where ``exc`` or an exception it wraps is a write refused for
    one of ``DISK_ERRORS``; None otherwise. Libraries that write in C, C++ or Rust (onnx,
    safetensors, torch) raise their own types: their message names the system error then."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_ERRORS:
            return os.strerror(exc.errno)
        for code in DISK_ERRORS:
            if os.strerror(code) in str(exc):
                return os.strerror(code)
        exc = exc.__cause__ or exc.__context__
    return None

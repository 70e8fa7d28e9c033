"""One check for the sizes a user asks for (``init --items``, ``--histories`` counts, a ``.npy``
header): refuse, saying how much memory it would take, before anything is allocated.

The limit is the machine's total memory (``os.sysconf``): a size above it can never succeed, and
asking numpy or torch for it ends in a MemoryError traceback, or in the OOM killer, minutes later.
"""

from __future__ import annotations

import os

from onerec_trt.errors import user_error


def total_memory() -> int | None:
    """This machine's physical memory in bytes; None where the system does not say."""
    try:
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return pages * page if pages > 0 and page > 0 else None


def human_bytes(count: float) -> str:
    """1536 -> '1.5 KiB'; binary units up to EiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(count) < 1024:
            return f"{count:.0f} B" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} EiB"


def require_memory(nbytes: float, what: str, note: str | None = None) -> None:
    """A user error when ``what`` needs more than this machine's total memory (``nbytes``)."""
    total = total_memory()
    if total is not None and nbytes > total:
        raise user_error(f"{what} would take {human_bytes(nbytes)} of memory; this machine has "
                         f"{human_bytes(total)}", note)


def histories_bytes(users: int, length: int) -> int:
    """Bytes of [users, length] int64 histories: the array and a same-sized working copy."""
    return 2 * 8 * users * length


def require_histories_memory(users: int, length: int, option: str = "--histories") -> None:
    """The shared check of a synthetic-request count (``init``/``import --histories``)."""
    require_memory(histories_bytes(users, length),
                   f"{option} {users:,} (int64 [{users:,}, {length}] requests)",
                   f"lower {option}")

"""The one table renderer: every table the project prints or writes goes through here.

Three shapes, one cell rule (``_cell``: a float as ``.4f`` unless the caller formatted it, a
``|`` escaped so it does not split the row):

- ``format_table``: a Markdown pipe table padded to column widths, for the terminal and small
  ``.md`` files (evaluate, run's summary, quantize's search.md, verify.md);
- ``markdown_lines``: a compact Markdown pipe table (cells unpadded, a column right-aligned where
  its ``align`` letter is ``r``), for long reports (analysis report.md, bench.md);
- ``plain_lines``: fixed-width columns without pipes, for progress tables on a terminal
  (``specs`` are format specs: ``"<7"``, ``">11.3f"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def _cell(value) -> str:
    """A cell's text; a ``|`` inside it is escaped (``\\|``) so it does not split the row."""
    text = f"{value:.4f}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|")


def format_table(header: list[str], rows: list[list]) -> str:
    """A pipe table, columns padded to their widths; no blank lines around it (see
    ``table_lines`` for a table among other lines of a Markdown file)."""
    head = [_cell(h) for h in header]
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(head)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in cells)])


def table_lines(header: list[str], rows: list[list]) -> list[str]:
    """The table as lines with a blank line before and after: Markdown ends a table only at a
    blank line, so text right below it would otherwise be read as more rows."""
    return ["", format_table(header, rows), ""]


def markdown_row(cells: Sequence) -> str:
    """One row of a compact pipe table (``markdown_lines``), for a table printed row by row."""
    texts = [_cell(c) for c in cells]
    return "|" + "".join(f" {text} |" if text else " |" for text in texts)


def markdown_lines(header: Sequence[str], rows: Sequence[Sequence], align: str = "") -> list[str]:
    """A compact pipe table as lines (header, separator, rows; no blank lines around it).
    ``align``: one letter a column, ``l`` or ``r`` (``---`` or ``---:``); missing letters are
    ``l``."""
    if len(align) > len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align {align!r}: one of l/r per column ({len(header)} columns)")
    seps = ["---:" if a == "r" else "---" for a in align.ljust(len(header), "l")]
    return [markdown_row(header), "|" + "".join(f"{s}|" for s in seps),
            *(markdown_row(r) for r in rows)]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], align: str = "") -> str:
    """``markdown_lines`` joined into one string."""
    return "\n".join(markdown_lines(header, rows, align))


_WIDTH = re.compile(r"^(.?[<>^])?(\d+)")


def plain_lines(header: Sequence[str], specs: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    """Fixed-width columns: each value formatted with its column's spec (``format(v, spec)``),
    each title with the spec's alignment and width only."""
    if len(header) != len(specs):
        raise ValueError(f"{len(header)} titles, {len(specs)} column specs")

    def title(text: str, spec: str) -> str:
        m = _WIDTH.match(spec)
        return format(text, f"{m.group(1) or ''}{m.group(2)}" if m else "")

    lines = ["".join(title(t, s) for t, s in zip(header, specs, strict=True))]
    lines += ["".join(format(v, s) for v, s in zip(row, specs, strict=True)) for row in rows]
    return lines

"""The one table renderer: Markdown pipe tables, for reports printed to the terminal and saved
as ``.md`` files."""

from __future__ import annotations


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

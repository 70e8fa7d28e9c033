"""The one table renderer writes Markdown that parses as the table it means."""

import pytest

from onerec_trt.tables import format_table, table_lines


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every table a Markdown parser (markdown-it-py, GFM tables) finds in ``text``: its rows
    (the header first) as lists of cell texts."""
    markdown_it = pytest.importorskip("markdown_it")
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(text)
    tables, row = [], None
    for i, token in enumerate(tokens):
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            row = []
            tables[-1].append(row)
        elif token.type in ("th_open", "td_open"):
            row.append(tokens[i + 1].content if tokens[i + 1].type == "inline" else "")
    return tables


def test_a_pipe_in_a_cell_is_escaped_and_the_row_keeps_its_columns():
    """Issue 30: ``p99 |diff|`` in a cell split the row in Markdown renderers."""
    text = format_table(["gate", "threshold"], [["scores_tensor", "p99 |diff| <= 0.5"]])
    assert "p99 \\|diff\\|" in text
    (table,) = markdown_tables(text)
    assert table == [["gate", "threshold"], ["scores_tensor", "p99 |diff| <= 0.5"]]


def test_text_right_below_a_table_is_not_read_as_rows():
    """Issue 30: reason lines glued to the table became rows of it."""
    lines = ["intro", *table_lines(["a", "b"], [[1, 2.5]]), "a reason line below"]
    assert lines[1] == "" and lines[3] == ""
    (table,) = markdown_tables("\n".join(lines))
    assert table == [["a", "b"], ["1", "2.5000"]]

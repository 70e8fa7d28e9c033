"""The one table renderer writes Markdown that parses as the table it means."""

import pytest

from helpers import markdown_tables
from onerec_trt.tables import (
    format_table,
    markdown_lines,
    markdown_row,
    markdown_table,
    plain_lines,
    table_lines,
)


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


def test_a_compact_table_aligns_columns_by_letter_and_parses():
    lines = markdown_lines(["backend", "p50 ms", "note"], [["ort-fp8", "1.25", "a | b"]], "lr")
    assert lines == ["| backend | p50 ms | note |", "|---|---:|---|",
                     "| ort-fp8 | 1.25 | a \\| b |"]
    (table,) = markdown_tables("\n".join(lines))
    assert table == [["backend", "p50 ms", "note"], ["ort-fp8", "1.25", "a | b"]]


def test_an_empty_cell_is_one_space_and_a_row_printed_alone_matches_the_table():
    lines = markdown_lines(["a", "b", "c"], [["x", "", 3]])
    assert lines[2] == "| x | | 3 |" == markdown_row(["x", "", 3])
    assert markdown_table(["a"], []) == "| a |\n|---|"


def test_an_align_string_that_does_not_fit_the_columns_is_refused():
    with pytest.raises(ValueError):
        markdown_lines(["a"], [], "lr")
    with pytest.raises(ValueError):
        markdown_lines(["a"], [], "c")


def test_plain_columns_format_values_by_spec_and_titles_by_its_width():
    lines = plain_lines(["preset", "N", "bf16 ms"], ["<7", ">4", ">9.3f"],
                        [["small", 8, 1.23456], ["paper", 128, float("nan")]])
    assert lines == ["preset    N  bf16 ms", "small     8    1.235", "paper   128      nan"]
    with pytest.raises(ValueError):
        plain_lines(["a", "b"], ["<3"], [])


def test_no_module_or_script_draws_a_pipe_table_of_its_own():
    """Every Markdown table is drawn by tables.py: no other file writes a separator row."""
    from pathlib import Path

    import onerec_trt

    src = Path(onerec_trt.__file__).resolve().parent
    files = [*src.rglob("*.py"), *(src.parents[1] / "scripts").glob("*.py")]
    drawing = [str(f) for f in files if f.name != "tables.py" and "|---" in f.read_text()]
    assert not drawing

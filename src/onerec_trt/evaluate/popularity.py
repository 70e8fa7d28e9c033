"""Recall@10 split by how often the target occurs in the training part.

Generative retrieval over semantic IDs and count-based baselines fail differently: the first
is strong on frequent targets, a Markov chain still finds targets seen a handful of times.
A split whose targets are rarer (Beauty's test split against its validation split) moves
them apart, and this table shows where.
"""

from __future__ import annotations

import numpy as np

from onerec_trt.metrics import hit_ranks
from onerec_trt.tables import format_table

EDGES = (0, 5, 10, 20, 50)  # buckets [0, 5), [5, 10), [10, 20), [20, 50), [50, inf)


def recall_by_target_popularity(train: list[np.ndarray], num_items: int, targets: np.ndarray,
                                ranked: dict[str, np.ndarray], k: int = 10) -> list[dict]:
    """One row per bucket: its bounds, user count and each ranking's Recall@k there."""
    counts = np.bincount(np.concatenate(train) if train else np.zeros(0, np.int64),
                         minlength=num_items + 1)
    occurrences = counts[targets]
    hits = {name: hit_ranks(r[:, :k], targets) >= 0 for name, r in ranked.items()}
    rows = []
    for lo, hi in zip(EDGES, (*EDGES[1:], None), strict=True):
        sel = (occurrences >= lo) & (True if hi is None else occurrences < hi)
        users = int(sel.sum())
        rows.append({"min": lo, "max": hi, "users": users,
                     **{name: float(h[sel].mean()) if users else None
                        for name, h in hits.items()}})
    return rows


def format_popularity_table(rows: list[dict]) -> str:
    names = [key for key in rows[0] if key not in ("min", "max", "users")]
    body = [[f"{r['min']}-{r['max'] - 1}" if r["max"] else f">= {r['min']}", r["users"],
             *("-" if r[n] is None else r[n] for n in names)] for r in rows]
    return ("Recall@10 by the target's occurrences in the training part\n"
            + format_table(["occurrences", "users", *names], body))

"""Simple non-neural baselines for the leave-one-out protocol, fitted on the training part only.

Every baseline scores the full catalogue (items 1..num_items) and keeps already-seen items, like
the protocol used for the generative models. Rankings are deterministic: higher score first, ties
(including every zero-scored item, i.e. the popularity fill) broken by training popularity, then
by lower item id.

- ``popularity``: training interaction counts; the same list for every user.
- ``markov``: first-order Markov chain. Score of item b = number of times b directly followed the
  user's last history item a in the training sequences (a -> b transitions, counted with
  multiplicity), filled with popularity.
- ``item_knn``: item-based collaborative filtering. Similarity = cosine over the binary user-item
  matrix of the training part, sim(i, j) = |U_i & U_j| / sqrt(|U_i| |U_j|), with sim(i, i) = 0.
  Score of item j = sum over the user's last ``KNN_LAST`` (3) distinct history items i of
  w(i) * sim(i, j), with recency weight w = 1 / position (1 for the last item, 1/2 for the one
  before, ...), filled with popularity.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from onerec_trt.data.split import LeaveOneOut

BASELINES = ("popularity", "markov", "item_knn")

KNN_LAST = 3  # distinct most recent history items that vote in item_knn
KNN_RECENCY = True  # weight them 1, 1/2, 1/3, ...; False: all 1 (with KNN_LAST = 5 this gives
# the lead's reference item-kNN numbers, ML-1M test R@10 0.112, Beauty 0.053)
_CHUNK_CELLS = 8_000_000  # dense score cells per chunk (users x items), <= 64 MB


def _popularity(train: list[np.ndarray], num_items: int) -> np.ndarray:
    """Items 1..num_items by training count (descending), ties by lower id."""
    flat = np.concatenate(list(train) + [np.zeros(0, dtype=np.int64)]).astype(np.int64)
    counts = np.bincount(flat, minlength=num_items + 1)[: num_items + 1]
    counts[0] = 0
    items = np.arange(1, num_items + 1, dtype=np.int64)
    return items[np.lexsort((items, -counts[1:]))]  # count desc, then id asc


def _transitions(train: list[np.ndarray], num_items: int) -> sp.csr_matrix:
    """Count matrix T[a, b] of a -> b between consecutive training items, [num_items + 1]^2."""
    srcs = [s[:-1] for s in train if len(s) > 1]
    dsts = [s[1:] for s in train if len(s) > 1]
    n = num_items + 1
    if not srcs:
        return sp.csr_matrix((n, n), dtype=np.float64)
    src, dst = np.concatenate(srcs), np.concatenate(dsts)
    data = np.ones(len(src), dtype=np.float64)
    return sp.csr_matrix((data, (src, dst)), shape=(n, n))  # duplicates are summed


def _cosine(train: list[np.ndarray], num_items: int) -> sp.csr_matrix:
    """Cosine item-item similarity over the binary user-item training matrix, zero diagonal."""
    n = num_items + 1
    empty = [np.zeros(0, dtype=np.int64)]
    rows = np.concatenate([np.full(len(s), u, dtype=np.int64) for u, s in enumerate(train)]
                          + empty)
    cols = np.concatenate(list(train) + empty).astype(np.int64)
    x = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                      shape=(len(train), n))
    x.sum_duplicates()
    x.data[:] = 1.0  # binary: repeated interactions of a user count once
    co = (x.T @ x).tocsr()
    co = (co - sp.diags(co.diagonal())).tocsr()  # no self-similarity
    co.eliminate_zeros()
    norm = np.sqrt(np.asarray(x.sum(axis=0), dtype=np.float64).ravel())  # sqrt |U_i|
    inv = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
    sim = sp.diags(inv) @ co @ sp.diags(inv)
    return sp.csr_matrix(sim, dtype=np.float32)


def _recent_weights(histories: list[np.ndarray], num_items: int, last: int,
                    recency: bool = True) -> sp.csr_matrix:
    """[U, num_items + 1] weights of the last ``last`` distinct items: 1, 1/2, 1/3, ... (or 1)."""
    rows, cols, vals = [], [], []
    for u, seq in enumerate(histories):
        seen: list[int] = []
        for item in seq[::-1].tolist():
            if item not in seen:
                seen.append(item)
                if len(seen) == last:
                    break
        rows.extend([u] * len(seen))
        cols.extend(seen)
        vals.extend(1.0 / np.arange(1, len(seen) + 1) if recency else np.ones(len(seen)))
    return sp.csr_matrix((np.asarray(vals, dtype=np.float32), (rows, cols)),
                         shape=(len(histories), num_items + 1))


def _top_k(scores: sp.spmatrix, pop_order: np.ndarray, k: int) -> np.ndarray:
    """Top ``k`` items [U, k] from non-negative ``scores`` [U, num_items + 1] (column = item id).

    Ties, including every zero-scored item (the popularity fill), go to the more popular item,
    then the lower id: columns are put in popularity order, the ``k`` best of each row are
    chosen (among equal scores, the first columns) and sorted by (score desc, column).
    """
    users = scores.shape[0]
    out = np.full((users, k), -1, dtype=np.int64)
    kk = min(k, len(pop_order))
    if kk == 0 or users == 0:
        return out
    scores = sp.csr_matrix(scores)[:, pop_order]  # column j = the j-th most popular item
    step = max(1, _CHUNK_CELLS // len(pop_order))
    for start in range(0, users, step):
        dense = scores[start:start + step].toarray()
        thr = -np.partition(-dense, kk - 1, axis=1)[:, kk - 1:kk]  # k-th largest score a row
        above = dense > thr
        equal = dense == thr
        need = kk - above.sum(axis=1, keepdims=True)
        chosen = above | (equal & (np.cumsum(equal, axis=1) <= need))  # exactly kk a row
        cols = np.nonzero(chosen)[1].reshape(-1, kk)  # row-major, so row by row
        vals = np.take_along_axis(dense, cols, axis=1)
        order = np.lexsort((cols, -vals), axis=1)  # score desc, then popularity position
        out[start:start + len(dense), :kk] = pop_order[np.take_along_axis(cols, order, axis=1)]
    return out


def _last_items(histories: list[np.ndarray], num_items: int) -> sp.csr_matrix:
    """One-hot [U, num_items + 1] of each user's last history item (empty row when none)."""
    rows = [u for u, s in enumerate(histories) if len(s)]
    cols = [int(histories[u][-1]) for u in rows]
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float64), (rows, cols)),
                         shape=(len(histories), num_items + 1))


def recommend_baselines(split: LeaveOneOut, split_name: str, num_items: int, k: int = 10,
                        users: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Ranked item ids [U, k] per baseline for the histories of ``split_name`` ("valid"/"test").

    Model item ids, best first; -1 only when the catalogue has fewer than ``k`` items.
    ``users``: indices of the users to score (default: all). Fitted on ``split.train`` only.
    """
    histories = split.histories(split_name)
    if users is not None:
        histories = [histories[int(u)] for u in np.asarray(users, dtype=np.int64).ravel()]
    pop_order = _popularity(split.train, num_items)
    pop_row = np.full(k, -1, dtype=np.int64)
    top = pop_order[:k]
    pop_row[: len(top)] = top
    markov = _last_items(histories, num_items) @ _transitions(split.train, num_items)
    weights = _recent_weights(histories, num_items, KNN_LAST, KNN_RECENCY)
    knn = weights @ _cosine(split.train, num_items)
    return {
        "popularity": np.tile(pop_row, (len(histories), 1)),
        "markov": _top_k(markov, pop_order, k),
        "item_knn": _top_k(knn, pop_order, k),
    }

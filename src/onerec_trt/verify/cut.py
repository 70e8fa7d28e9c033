"""The score error at the top-K cut against the gap there: does FP8 reorder near-ties or real
differences?

Per user, from the reference's and the candidate's top-K scores (sorted, best first): the error
at the cut, |candidate - reference| of the K-th score, and the reference's gap between its K-th
and (K+1)-th score. Where the error exceeds the gap, FP8 moves the cut by more than the margin
that separates the K-th item from the first one left out: an item can cross it. The gap needs
the (K+1)-th score: graphs exported with ``--topk`` K return only K, and then it is not
computed (no guess).
"""

from __future__ import annotations

import numpy as np


def cut_vs_gap(reference: np.ndarray, candidate: np.ndarray, k: int = 10) -> dict:
    """Median error at the cut, median gap and the share of users whose error exceeds the gap
    (users with a non-finite score at the cut are left out); ``{"computed": False, "why"}``
    when the scores stop at K."""
    if reference.shape[1] <= k:
        return {"k": k, "computed": False,
                "why": f"the graphs return {reference.shape[1]} scores per user: the gap "
                       f"between the {k}th and {k + 1}th needs --topk {k + 1} or more at export"}
    error = np.abs(candidate[:, k - 1] - reference[:, k - 1])
    gap = reference[:, k - 1] - reference[:, k]
    finite = np.isfinite(error) & np.isfinite(gap)
    error, gap = error[finite], gap[finite]
    if not error.size:
        return {"k": k, "computed": False, "why": "no user has finite scores at the cut"}
    return {"k": k, "computed": True, "users": int(error.size),
            "error_median": float(np.median(error)), "gap_median": float(np.median(gap)),
            "error_exceeds_gap_share": float((error > gap).mean())}

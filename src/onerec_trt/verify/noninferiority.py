"""The non-inferiority test behind verify's Recall@10 and NDCG@10 gates.

The relative change of a metric, candidate against reference on the same users, is
``mean(c - r) / mean(r)`` (a ratio of means of paired per-user values). Its CI is a paired
bootstrap percentile interval: users are resampled with replacement, both graphs' values of a
user together. H0 "the candidate loses at least ``margin``" (change <= -margin) is rejected, and
the gate passes, when the CI's lower bound is >= -margin; the gate fails when the whole CI lies
below -margin; otherwise the sample cannot decide (inconclusive), and ``decide`` estimates how
many users would. With a two-sided CI of level ``confidence`` each one-sided decision is made at
(1 - confidence) / 2. See docs/verify.md for the error rates (``simulate_gate``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass(frozen=True)
class RelativeChange:
    """A metric's relative change, candidate against reference, with its CI."""

    change: float
    low: float
    high: float
    confidence: float


@dataclass(frozen=True)
class Decision:
    decision: str  # PASS, FAIL or INCONCLUSIVE
    reason: str
    users_needed: int | None = None  # inconclusive: the sample size expected to decide


def _bootstrap(ref: np.ndarray, diff: np.ndarray, counts: np.ndarray, confidence: float,
               resamples: int, rng: np.random.Generator) -> RelativeChange:
    """The paired bootstrap on users grouped by their distinct (reference, difference) values.

    Resampling n users with replacement draws the number of copies of each group from
    Multinomial(n, group share): the same distribution as resampling users one by one, at
    ``resamples x groups`` cost instead of ``resamples x users`` (Recall has 4 groups at most,
    NDCG@10 121)."""
    n = int(counts.sum())
    if n <= 0:
        raise ValueError("the non-inferiority test needs at least one user")
    ref_sum, diff_sum = float(counts @ ref), float(counts @ diff)
    if ref_sum <= 0:  # no reference hits: nothing to lose; a relative gain is undefined
        return RelativeChange(0.0, 0.0, 0.0, confidence)
    boot = rng.multinomial(n, counts / n, size=resamples)
    boot_ref, boot_diff = boot @ ref, boot @ diff
    rel = np.divide(boot_diff, boot_ref, out=np.zeros(resamples), where=boot_ref > 0)
    alpha = 1.0 - confidence
    low, high = np.quantile(rel, [alpha / 2, 1 - alpha / 2])
    return RelativeChange(diff_sum / ref_sum, float(low), float(high), confidence)


def relative_change_ci(reference: np.ndarray, candidate: np.ndarray, confidence: float = 0.95,
                       resamples: int = 1000, seed: int = 0) -> RelativeChange:
    """The relative change of the mean of per-user ``candidate`` values against ``reference``
    values (same users, same order), with its paired bootstrap percentile CI. Identical values
    give exactly [0, 0]; a reference mean of 0 gives 0 and [0, 0] (no loss is possible)."""
    reference, candidate = np.asarray(reference, float), np.asarray(candidate, float)
    if reference.shape != candidate.shape or reference.ndim != 1:
        raise ValueError(f"expected two [users] arrays, got {reference.shape} and "
                         f"{candidate.shape}")
    pairs, counts = np.unique(np.stack([reference, candidate - reference], axis=1), axis=0,
                              return_counts=True)
    return _bootstrap(pairs[:, 0], pairs[:, 1], counts.astype(float), confidence, resamples,
                      np.random.default_rng(seed))


def _about(n: float) -> int:
    """``n`` rounded up to two significant digits (an estimate, not a count)."""
    n = math.ceil(n)
    step = 10 ** max(len(str(n)) - 2, 0)
    return -(-n // step) * step


def decide(ci: RelativeChange, margin: float, users: int) -> Decision:
    """Non-inferiority at ``margin`` (a relative loss, 0.01 = 1%) from the CI of ``users``.

    Inconclusive: ``users_needed`` is the sample size at which the CI's half-width on the
    undecided side would fit between the observed change and -margin, assuming the observed
    change and the spread of the per-user differences stay as measured (the half-width shrinks
    as 1/sqrt(users)). At that size the test decides about half the time (the estimate moves)."""
    level = f"{ci.confidence:.0%} CI [{ci.low:+.2%}, {ci.high:+.2%}]"
    if ci.low >= -margin:
        return Decision(PASS, f"{level}: its lower bound is within the margin -{margin:.2%}")
    if ci.high < -margin:
        return Decision(FAIL, f"{level} lies below -{margin:.2%}: the loss is beyond the margin")
    gap = ci.change + margin
    holds = f"{level} contains the margin -{margin:.2%}"
    if math.isclose(gap, 0.0, abs_tol=1e-12):
        return Decision(INCONCLUSIVE, f"{holds} and the observed change equals it: more users "
                                      "are not expected to decide")
    if gap > 0:  # the estimate is within the margin: the lower bound has to rise above it
        needed = _about(users * ((ci.change - ci.low) / gap) ** 2)
        why = "for the lower bound to clear the margin (a pass, if the observed change holds)"
    else:  # the estimate is beyond the margin: the upper bound has to fall below it
        needed = _about(users * ((ci.high - ci.change) / -gap) ** 2)
        why = ("for the upper bound to fall below the margin (the observed change is beyond "
               "it: if it holds, more users would most likely confirm a failure)")
    return Decision(INCONCLUSIVE, f"{holds}: about {needed:,} users needed {why} "
                                  f"({users:,} measured)", needed)


def noninferiority(reference: np.ndarray, candidate: np.ndarray, margin: float,
                   confidence: float = 0.95, resamples: int = 1000,
                   seed: int = 0) -> tuple[RelativeChange, Decision]:
    """``relative_change_ci`` and ``decide`` on per-user values (each user's Recall or NDCG)."""
    ci = relative_change_ci(reference, candidate, confidence, resamples, seed)
    return ci, decide(ci, margin, len(reference))


def simulate_gate(change: float, users: int, *, hit_rate: float = 0.2, changed: float = 0.05,
                  margin: float = 0.01, confidence: float = 0.95, resamples: int = 1000,
                  trials: int = 1000, seed: int = 0) -> dict[str, float]:
    """Share of ``trials`` simulated verify runs whose Recall gate passes, is inconclusive or
    fails, for a candidate whose true relative Recall change is ``change``.

    Each user's reference hit is 1 with probability ``hit_rate``; a share ``changed`` of users
    has a different candidate hit (lost or gained, split so that the candidate's hit rate is
    ``hit_rate * (1 + change)``). ``point_fail`` is the old gate's failure rate (the point
    estimate below -margin), for comparison."""
    lost = (changed - change * hit_rate) / 2
    gained = (changed + change * hit_rate) / 2
    probs = np.array([hit_rate - lost, lost, gained, 1 - hit_rate - gained])
    if (probs < 0).any():
        raise ValueError(f"{changed:.1%} changed users cannot make a {change:+.1%} change "
                         f"of a {hit_rate} hit rate")
    ref, diff = np.array([1.0, 1.0, 0.0, 0.0]), np.array([0.0, -1.0, 1.0, 0.0])
    rng = np.random.default_rng(seed)
    tally = {PASS: 0, INCONCLUSIVE: 0, FAIL: 0, "point_fail": 0}
    for _ in range(trials):
        counts = rng.multinomial(users, probs).astype(float)
        ci = _bootstrap(ref, diff, counts, confidence, resamples, rng)
        tally[decide(ci, margin, users).decision] += 1
        tally["point_fail"] += ci.change < -margin
    return {k: v / trials for k, v in tally.items()}

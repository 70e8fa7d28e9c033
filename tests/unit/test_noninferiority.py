"""The non-inferiority test of verify's Recall/NDCG gates, on constructed per-user values."""

import numpy as np
import pytest

from onerec_trt.verify.noninferiority import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    RelativeChange,
    decide,
    noninferiority,
    relative_change_ci,
    simulate_gate,
)

MARGIN = 0.01


def _users(n: int, hits: int, lost: int, gained: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-user Recall of reference and candidate: ``hits`` reference hits, of which the
    candidate loses ``lost``, and ``gained`` hits the candidate finds where the reference
    missed; shuffled so that no test leans on the order."""
    ref, cand = np.zeros(n), np.zeros(n)
    ref[:hits] = 1
    cand[lost:hits + gained] = 1
    order = np.random.default_rng(1).permutation(n)
    return ref[order], cand[order]


def test_identical_values_pass_with_a_ci_of_exactly_zero():
    rng = np.random.default_rng(0)
    ndcg = np.where(rng.random(3000) < 0.2, 1 / np.log2(rng.integers(0, 10, 3000) + 2), 0.0)
    ci, verdict = noninferiority(ndcg, ndcg.copy(), MARGIN)
    assert (ci.change, ci.low, ci.high) == (0.0, 0.0, 0.0)
    assert verdict.decision == PASS and verdict.users_needed is None


@pytest.mark.parametrize("candidate", [0.0, 1.0])
def test_a_reference_without_hits_passes_without_nan(candidate):
    """Reference metric 0: no loss is possible; a gain from 0 has no relative size."""
    ref, cand = np.zeros(200), np.zeros(200)
    cand[:3] = candidate
    ci, verdict = noninferiority(ref, cand, MARGIN)
    assert (ci.change, ci.low, ci.high) == (0.0, 0.0, 0.0)
    assert verdict.decision == PASS


def test_half_the_hits_lost_on_5000_users_fails():
    ref, cand = _users(5000, hits=1000, lost=500, gained=0)
    ci, verdict = noninferiority(ref, cand, MARGIN)
    assert ci.change == pytest.approx(-0.5)
    assert ci.low < -0.5 < ci.high < -0.45
    assert verdict.decision == FAIL and "beyond the margin" in verdict.reason


def test_small_noisy_sample_is_inconclusive_and_the_users_needed_would_decide():
    """500 users, 100 hits, 10 lost and 10 gained: no change, a CI of several percent. The
    users needed follow the normal approximation, (z * sd(d) / (mean(r) * margin))^2, and
    the same sample at twice that size (every user repeated) passes: its CI fits."""
    ref, cand = _users(500, hits=100, lost=10, gained=10)
    ci, verdict = noninferiority(ref, cand, MARGIN)
    assert ci.change == 0.0 and ci.low < -MARGIN < ci.high
    assert verdict.decision == INCONCLUSIVE
    expected = (1.96 * np.std(cand - ref) / (ref.mean() * MARGIN)) ** 2  # ~38,400
    assert 0.8 * expected < verdict.users_needed < 1.25 * expected
    assert f"about {verdict.users_needed:,} users needed" in verdict.reason
    repeat = int(np.ceil(2 * verdict.users_needed / 500))
    _, bigger = noninferiority(np.tile(ref, repeat), np.tile(cand, repeat), MARGIN)
    assert bigger.decision == PASS


def test_an_estimate_beyond_the_margin_asks_for_users_to_confirm_a_failure():
    ref, cand = _users(400, hits=80, lost=6, gained=2)  # -5%
    ci, verdict = noninferiority(ref, cand, MARGIN)
    assert ci.change == pytest.approx(-0.05) and ci.low < -MARGIN < ci.high
    assert verdict.decision == INCONCLUSIVE and "confirm a failure" in verdict.reason
    repeat = int(np.ceil(2 * verdict.users_needed / 400))
    _, bigger = noninferiority(np.tile(ref, repeat), np.tile(cand, repeat), MARGIN)
    assert bigger.decision == FAIL


def test_decisions_at_the_margin():
    at = lambda low, high, change=-0.005: decide(RelativeChange(change, low, high, 0.95),  # noqa: E731
                                                 MARGIN, 1000)
    assert at(-0.01, 0.02).decision == PASS  # the lower bound on the margin: within it
    assert at(-0.03, -0.0101, change=-0.02).decision == FAIL
    assert at(-0.03, -0.01, change=-0.02).decision == INCONCLUSIVE
    on = at(-0.02, 0.0, change=-0.01)
    assert on.decision == INCONCLUSIVE and on.users_needed is None  # no size decides


def test_grouped_bootstrap_matches_resampling_users_one_by_one():
    """The CI resamples groups of equal users by multinomial counts: the same distribution as
    the plain paired bootstrap, checked against it with many resamples."""
    rng = np.random.default_rng(3)
    ref = np.where(rng.random(1500) < 0.3, 1 / np.log2(rng.integers(0, 10, 1500) + 2), 0.0)
    cand = np.where(rng.random(1500) < 0.1, 0.0, ref)
    ci = relative_change_ci(ref, cand, resamples=20000, seed=4)
    idx = rng.integers(0, 1500, size=(20000, 1500))
    plain = (cand[idx].mean(1) - ref[idx].mean(1)) / ref[idx].mean(1)
    low, high = np.quantile(plain, [0.025, 0.975])
    assert ci.change == pytest.approx((cand.mean() - ref.mean()) / ref.mean())
    assert ci.low == pytest.approx(low, abs=0.004) and ci.high == pytest.approx(high, abs=0.004)


def test_simulated_error_rates():
    """No real loss on 20,000 users rarely fails; a 5% loss always does; the old point
    estimate gate failed a lossless graph far more often."""
    none = simulate_gate(0.0, 20000, changed=0.02, trials=300)
    assert none[FAIL] < 0.02 and none[PASS] > 0.3
    assert none[PASS] + none[INCONCLUSIVE] + none[FAIL] == pytest.approx(1.0)
    small = simulate_gate(0.0, 1000, changed=0.10, trials=300)
    assert small[FAIL] < 0.05 < 0.25 < small["point_fail"]
    assert simulate_gate(-0.05, 20000, changed=0.02, trials=100)[FAIL] == 1.0
    with pytest.raises(ValueError, match="cannot make"):
        simulate_gate(-0.5, 1000, changed=0.02)

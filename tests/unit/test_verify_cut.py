"""verify's score error at the top-K cut against the K/K+1 gap (verify/cut.py)."""

import numpy as np
import pytest

from onerec_trt.verify.cut import cut_vs_gap


def test_error_at_the_cut_is_compared_with_the_reference_gap():
    # 3 users, K = 2 of 3 scores: gaps 1.0, 0.1, 0.5; errors at the 2nd score 0.2, 0.2, 0.0
    reference = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.9], [3.0, 2.0, 1.5]])
    candidate = np.array([[3.0, 2.2, 0.0], [3.1, 1.8, 0.0], [3.0, 2.0, 0.0]])
    cut = cut_vs_gap(reference, candidate, 2)
    assert cut["computed"] and cut["users"] == 3
    assert cut["error_median"] == pytest.approx(0.2)
    assert cut["gap_median"] == pytest.approx(0.5)
    assert cut["error_exceeds_gap_share"] == pytest.approx(1 / 3)


def test_without_the_next_score_the_gap_is_not_guessed():
    scores = np.zeros((4, 10))
    cut = cut_vs_gap(scores, scores, 10)
    assert not cut["computed"] and "--topk 11" in cut["why"]


def test_users_with_non_finite_scores_at_the_cut_are_left_out():
    reference = np.array([[2.0, 1.0, 0.0], [2.0, -np.inf, -np.inf]])
    cut = cut_vs_gap(reference, reference.copy(), 2)
    assert cut["users"] == 1 and cut["error_exceeds_gap_share"] == 0.0

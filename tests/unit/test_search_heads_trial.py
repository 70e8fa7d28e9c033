"""The search's "all but heads" trial: all-FP8 as FP8-aware training and QAD run it, measured
beside the search's steps without changing what the search chooses."""

import pytest

from onerec_trt.quantize.flops import RequestFlops
from onerec_trt.quantize.search import search_layers


def _fake_overlap(loss: dict[str, float]):
    def evaluate(bf16):
        value = 1.0 - sum(v for k, v in loss.items() if k not in bf16)
        return value, value

    return evaluate


LOSS = {"heads.0": 0.05, "big": 0.01, "small": 0.03}
FLOPS = RequestFlops({"heads.0": 10, "big": 60, "small": 10}, total=100, basis="test")


def test_all_but_heads_is_measured_once_and_not_accepted():
    result = search_layers(_fake_overlap(LOSS), list(LOSS), FLOPS, 0.95, heads=["heads.0"])
    heads = [t for t in result.trials if t.step == "all but heads"]
    assert len(heads) == 1 and not heads[0].accepted
    assert heads[0].overlap_at_10 == pytest.approx(0.96)  # big + small in FP8
    assert heads[0].fp8_flop_share == pytest.approx(0.70)
    assert heads[0].bf16_layers == 1


def test_the_heads_trial_does_not_change_the_choice():
    plain = search_layers(_fake_overlap(LOSS), list(LOSS), FLOPS, 0.95)
    with_heads = search_layers(_fake_overlap(LOSS), list(LOSS), FLOPS, 0.95, heads=["heads.0"])
    assert with_heads.bf16_layers == plain.bf16_layers
    assert with_heads.overlap_at_10 == plain.overlap_at_10
    assert "all but heads" not in [t.step for t in plain.trials]


def test_forced_heads_need_no_extra_trial():
    result = search_layers(_fake_overlap(LOSS), list(LOSS), FLOPS, 0.95,
                           forced={"heads.0"}, heads=["heads.0"])
    assert "all but heads" not in [t.step for t in result.trials]


def test_search_md_says_when_the_target_is_not_reached():
    """Against a QAD teacher the student's all-bf16 loop may miss the target: search.md must
    not claim the bound reached it."""
    from onerec_trt.quantize.search import trials_table

    chosen = {"users": 300, "split": "valid", "dataset": "ml-1m", "calibration": "max",
              "flop_basis": "test", "target_overlap": 0.95, "reference": "the teacher's bf16"}
    missed = search_layers(lambda bf16: (0.94, 0.933), list(LOSS), FLOPS, 0.95)
    text = trials_table(missed, chosen)
    assert "against the teacher's bf16" in text
    assert "0.9330 < the target 0.95: not reached" in text and ">= the target" not in text
    met = search_layers(_fake_overlap(LOSS), list(LOSS), FLOPS, 0.95)
    assert ">= the target 0.95" in trials_table(met, {**chosen, "reference": "bf16"})

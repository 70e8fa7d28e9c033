"""The price of fidelity: an FP8 policy's predicted speed-up (roofline / Amdahl) and the search's
Pareto table and plot."""

import pytest

from onerec_trt.model.config import ModelConfig
from onerec_trt.quantize.flops import RequestFlops, roofline_flops
from onerec_trt.quantize.pareto import PARETO_MD, PARETO_PNG, pareto_rows, write_pareto
from onerec_trt.quantize.search import SearchResult, Trial
from onerec_trt.quantize.speedup import LABEL, predicted_speedup, speedup_record
from onerec_trt.roofline import load_gpus, onerec_ops, predict


def test_native_speedup_is_the_analyze_stages_roofline_prediction():
    paper = ModelConfig.from_preset("paper")
    flops = roofline_flops(paper, 32, 512)  # the analyze stage's paper shape
    every = predicted_speedup(flops, [])
    h200 = predict(onerec_ops(paper, 32, 512), load_gpus(["H200"])["H200"])
    assert every["H200"] == pytest.approx(h200["predicted_speedup"])
    assert every["H200"] == pytest.approx(1.78, abs=0.005)  # docs/analysis: "1.78x"
    assert set(every) == {"H100-SXM", "H200"}
    heads = [name for name in flops.per_layer if name.startswith("heads.")]
    assert 1.0 < predicted_speedup(flops, heads)["H200"] < every["H200"]
    assert predicted_speedup(flops, list(flops.per_layer))["H200"] == pytest.approx(1.0)
    assert speedup_record(flops, [])["label"] == LABEL == "predicted (roofline), not measured"


def test_imported_speedup_is_amdahl_over_the_counted_gemm_flops():
    flops = RequestFlops({"a": 30.0, "b": 70.0}, total=100.0, basis="counted")
    # H100/H200 FP8 peak is (about) twice BF16: 70% of the FLOPs at 2x -> 1 / (0.3 + 0.35)
    assert predicted_speedup(flops, ["a"])["H100-SXM"] == pytest.approx(1 / 0.65, rel=1e-3)
    assert predicted_speedup(flops, ["a", "b"])["H200"] == pytest.approx(1.0)
    assert "Amdahl" in speedup_record(flops, [])["basis"]


def _result() -> SearchResult:
    def trial(step, share, overlap, accepted=False):
        return Trial(step, f"{step} {share}", 0, share, overlap, overlap - 0.01, accepted,
                     {"H100-SXM": 1 + share / 2, "H200": 1 + share / 2},
                     {"recall@10": -0.01, "ndcg@10": -0.02})

    trials = [trial("sensitivity", 0.2, 0.99), trial("sensitivity", 0.3, 0.95),
              trial("all", 0.9, 0.85, True), trial("greedy", 0.6, 0.96, True),
              trial("give back", 0.7, 0.94)]
    return SearchResult(["x"], 0.96, 0.95, 0.6, {}, trials, {"H100-SXM": 1.3, "H200": 1.3})


def test_pareto_rows_mark_the_front_and_the_chosen_policy():
    rows = pareto_rows(_result(), [{"calibration": "max", "overlap_at_10": 0.85},
                                   {"calibration": "mse", "overlap_at_10": 0.80}])
    assert [r["pareto"] for r in rows] == [True, False,  # calibration rows: all-FP8 share
                                           True, False, True, True, True]
    assert [r["chosen"] for r in rows].index(True) == 5  # the last accepted trial
    assert rows[1]["overlap_lower_95"] is None and rows[1]["fp8_flop_share"] == 0.9


def test_write_pareto_writes_the_table_and_the_plot(tmp_path):
    chosen = {"users": 40, "split": "valid", "dataset": "toy", "target_overlap": 0.95,
              "flop_basis": "test FLOPs", "calibration_trials": []}
    record = write_pareto(tmp_path, _result(), chosen, "a basis")
    assert record["table"] == PARETO_MD and record["plot"] == PARETO_PNG
    text = (tmp_path / PARETO_MD).read_text()
    assert "**chosen**" in text and "-1.00%" in text and LABEL in text and "1.30x" in text
    assert (tmp_path / PARETO_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name not in (PARETO_MD, PARETO_PNG)]

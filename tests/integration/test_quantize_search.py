"""quantize --search and FP8 policies: chosen on validation users, reproducible from the report."""

import json

import numpy as np
import pytest

from helpers import random_histories
from onerec_trt.errors import UserError
from onerec_trt.graphs import make_session
from onerec_trt.layout import FP8_CPU_GRAPH, QUANTIZE_REPORT, SEARCH_MD
from onerec_trt.quantize import QuantizeOptions, QuantizeReport, quantize
from onerec_trt.quantize.flops import RequestFlops
from onerec_trt.quantize.policy import POLICY_JSON, read_policy
from onerec_trt.quantize.search import search_layers


def _fake_overlap(loss: dict[str, float]):
    """overlap@10 = 1 - the summed losses of the layers in FP8 (a stand-in for a model)."""
    def evaluate(bf16):
        value = 1.0 - sum(v for k, v in loss.items() if k not in bf16)
        return value, value

    return evaluate


def test_search_keeps_the_costliest_layers_per_flop_in_bf16_and_meets_the_target():
    loss = {"big_noisy": 0.04, "big_clean": 0.01, "small_noisy": 0.03, "small_clean": 0.002}
    flops = RequestFlops({"big_noisy": 40, "big_clean": 40, "small_noisy": 5,
                          "small_clean": 5}, total=100, basis="test")
    result = search_layers(_fake_overlap(loss), list(loss), flops, target=0.95)
    # greedy: small_noisy (most loss per FLOP: 0.918 -> 0.948), then big_noisy (0.988); give
    # back, largest FLOPs first: big_noisy back fails (0.948), small_noisy back holds (0.958)
    assert result.bf16_layers == ["big_noisy"]
    assert result.overlap_at_10 == pytest.approx(0.958)
    assert result.fp8_flop_share == pytest.approx(0.50)  # of 100: attention etc. are 10
    assert result.sensitivity["big_noisy"] == pytest.approx(0.04)
    steps = [t.step for t in result.trials]
    assert steps[:4] == ["sensitivity"] * 4 and "all" in steps and "give back" in steps


def test_search_gives_back_layers_the_target_no_longer_needs():
    loss = {"a": 0.02, "b": 0.02, "c": 0.02}
    flops = RequestFlops({"a": 10, "b": 20, "c": 30}, total=60, basis="test")
    result = search_layers(_fake_overlap(loss), list(loss), flops, target=0.97)
    assert result.overlap_at_10 >= 0.97
    assert result.bf16_layers == ["a", "b"]  # c (largest FLOPs) stays FP8
    easy = search_layers(_fake_overlap(loss), list(loss), flops, target=0.9)
    assert easy.bf16_layers == [] and easy.fp8_flop_share == 1.0


def test_forced_layers_stay_bf16_whatever_the_search_finds():
    loss = {"a": 0.0, "b": 0.0}
    flops = RequestFlops({"a": 1, "b": 1}, total=2, basis="test")
    result = search_layers(_fake_overlap(loss), list(loss), flops, 0.95, forced={"a"})
    assert result.bf16_layers == ["a"]
    assert "a" not in result.sensitivity


@pytest.fixture(scope="module")
def searched(tiny_pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "fp8"
    seen = []
    from onerec_trt.data import samplers

    original = samplers.held_out

    def spy(split, which, *args, **kwargs):
        seen.append(which)
        return original(split, which, *args, **kwargs)

    from onerec_trt.quantize import choose  # onerec_trt.quantize is the stage function

    mp = pytest.MonkeyPatch()
    mp.setattr(choose, "held_out", spy)
    try:
        report = quantize(QuantizeOptions(
            model=str(tiny_pipeline / "model"), onnx=str(tiny_pipeline / "onnx"), out=str(out),
            calib_users=32, calib_batch=16, search=True, search_users=40,
            target_overlap=0.999))
    finally:
        mp.undo()
    return out, report, seen


def test_search_measures_on_validation_users_only_and_records_its_choice(searched):
    out, report, seen = searched
    assert seen == ["valid"]
    chosen = report.policy["chosen"]
    assert chosen["split"] == "valid" and chosen["users"] == 40
    assert chosen["target_overlap"] == 0.999
    accepted = [t for t in report.search["trials"] if t["accepted"]]
    assert accepted[-1]["bf16_layers"] == len(report.policy["bf16_layers"])
    assert report.policy["bf16_layers"] and chosen["overlap_lower_95"] >= 0.999
    assert report.fp8_flop_share == pytest.approx(chosen["fp8_flop_share"])
    assert sorted(report.excluded_gemms) == report.policy["bf16_layers"]
    assert set(report.search["sensitivity"]) == set(report.quantized_gemms) | set(
        report.excluded_gemms)
    assert {t["calibration"] for t in chosen["calibration_trials"]} == {"max", "mse"}
    table = (out / SEARCH_MD).read_text()
    assert "sensitivity" in table and "give back" in table and "valid users" in table
    assert read_policy(out / POLICY_JSON).bf16_layers == report.policy["bf16_layers"]


def test_search_writes_the_pareto_table_and_plot_with_predicted_speedups(searched):
    from onerec_trt.quantize.pareto import PARETO_MD, PARETO_PNG
    from onerec_trt.quantize.speedup import LABEL

    out, report, _ = searched
    speedup = report.predicted_speedup
    assert speedup["label"] == LABEL and set(speedup["over_bf16"]) == {"H100-SXM", "H200"}
    assert speedup["over_bf16"] == report.search["predicted_speedup"]
    assert report.pareto["table"] == PARETO_MD and report.pareto["plot"] == PARETO_PNG
    rows = report.pareto["rows"]
    assert len(rows) == len(report.search["trials"]) + 2  # + the max and mse calibrations
    assert sum(r["chosen"] for r in rows) == 1 and any(r["pareto"] for r in rows)
    chosen = next(r for r in rows if r["chosen"])
    assert chosen["fp8_flop_share"] == pytest.approx(report.fp8_flop_share)
    assert chosen["predicted_speedup"] == speedup["over_bf16"]
    assert set(chosen["quality_change"]) == {"recall@10", "ndcg@10"}
    text = (out / PARETO_MD).read_text()
    assert "**chosen**" in text and LABEL in text and "Recall@10 change" in text
    assert (out / PARETO_PNG).read_bytes()[:4] == b"\x89PNG"
    assert LABEL in (out / SEARCH_MD).read_text()


def test_policy_from_the_report_reproduces_the_searched_graph(searched, tiny_pipeline, tmp_path):
    out, report, _ = searched
    again = quantize(QuantizeOptions(
        model=str(tiny_pipeline / "model"), onnx=str(tiny_pipeline / "onnx"),
        out=str(tmp_path / "fp8"), calib_users=32, calib_batch=16,
        policy=str(out / QUANTIZE_REPORT)))
    assert again.quantized_gemms == report.quantized_gemms
    assert again.calibration["method"] == report.policy["calibration"]
    hist = random_histories(32, 20, 40, seed=3).numpy()
    a = make_session(out / FP8_CPU_GRAPH).run(None, {"history": hist})
    b = make_session(tmp_path / "fp8" / FP8_CPU_GRAPH).run(None, {"history": hist})
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_the_model_folders_own_policy_is_the_default(tiny_pipeline, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_pipeline / "model", model)
    (model / POLICY_JSON).write_text(json.dumps({"bf16_layers": ["blocks.0.ffn.up"]}))
    report = quantize(QuantizeOptions(model=str(model), onnx=str(tiny_pipeline / "onnx"),
                                      out=str(tmp_path / "fp8"), calib_users=16,
                                      calib_batch=16))
    assert list(report.excluded_gemms) == ["blocks.0.ffn.up"]
    assert "fp8_policy.json" in report.excluded_gemms["blocks.0.ffn.up"]
    saved = QuantizeReport.load(tmp_path / "fp8" / QUANTIZE_REPORT)
    assert saved.policy["bf16_layers"] == ["blocks.0.ffn.up"]


@pytest.mark.parametrize("change, message", [
    ({"search": True, "policy": "x.json"}, "--search chooses the policy"),
    ({"search": True, "target_overlap": 1.5}, "--target-overlap"),
    ({"policy": "missing.json"}, "FP8 policy not found"),
])
def test_contradictory_or_missing_search_options_are_refused(tiny_pipeline, tmp_path, change,
                                                             message):
    opts = QuantizeOptions(model=str(tiny_pipeline / "model"), onnx=str(tiny_pipeline / "onnx"),
                           out=str(tmp_path / "fp8"), calib_users=16, calib_batch=16)
    for key, value in change.items():
        setattr(opts, key, str(tmp_path / value) if key == "policy" else value)
    with pytest.raises(UserError, match=message):
        quantize(opts)
    assert not (tmp_path / "fp8").exists()


def test_a_policy_for_another_model_is_refused(tiny_pipeline, tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"bf16_layers": ["decoder.layers.7.mlp"]}))
    with pytest.raises(UserError, match="does not have"):
        quantize(QuantizeOptions(model=str(tiny_pipeline / "model"),
                                 onnx=str(tiny_pipeline / "onnx"), out=str(tmp_path / "fp8"),
                                 policy=str(path), calib_users=16, calib_batch=16))
    path.write_text(json.dumps({"exclude": []}))
    with pytest.raises(UserError, match="not an FP8 policy"):
        read_policy(path)


def test_the_search_holds_the_lower_confidence_bound_not_the_mean_to_the_target():
    loss = {"a": 0.02, "b": 0.02, "c": 0.02}
    flops = RequestFlops({"a": 10, "b": 10, "c": 10}, total=30, basis="test")

    def noisy(bf16):  # the mean reaches 0.96 with one layer in bf16; the bound needs two
        mean = 1.0 - sum(v for k, v in loss.items() if k not in bf16)
        return mean, mean - 0.015

    result = search_layers(noisy, list(loss), flops, target=0.96)
    assert len(result.bf16_layers) == 2
    assert result.overlap_lower_95 >= 0.96 and result.overlap_at_10 == pytest.approx(0.98)


def test_the_fp8_share_is_the_analysis_rooflines():
    from onerec_trt.model.config import ModelConfig
    from onerec_trt.quantize.flops import roofline_flops
    from onerec_trt.roofline import onerec_ops, totals

    cfg = ModelConfig.from_preset("small")
    flops = roofline_flops(cfg, 64, 20)
    kept = {"heads.0", "heads.1", "heads.2", "context.kv_proj.0"}
    assert flops.fp8_share(kept) == pytest.approx(
        totals(onerec_ops(cfg, 64, 20, excluded=frozenset(kept)))["fp8_gemm_flops_share"])
    assert 0 < flops.fp8_share(kept) < flops.fp8_share(set()) < 1  # attention is never FP8


@pytest.mark.parametrize("extra, message", [
    (["--search", "--quantize-all"], "--search and --quantize-all contradict"),
    (["--search", "--calibration", "x.json"], "--search chooses the policy"),
    (["--search-users", "0"], "must be a positive integer"),
    (["--calib-method", "entropy"], "invalid choice"),
    (["--policy", "bad.json"], "not an FP8 policy"),
])
def test_bad_search_options_exit_2_with_one_line_and_keep_earlier_output(
        tiny_pipeline, tmp_path, cli, capsys, extra, message):
    (tmp_path / "bad.json").write_text(json.dumps({"exclude": ["heads.0"]}))
    out = tmp_path / "fp8"
    out.mkdir()
    (out / "earlier.txt").write_text("kept")
    extra = [str(tmp_path / a) if a.endswith(".json") else a for a in extra]
    try:
        result = cli("quantize", "--model", tiny_pipeline / "model", "--onnx",
                     tiny_pipeline / "onnx", "--out", out, "--force", *extra)
        code, stderr = result.returncode, result.stderr
    except SystemExit as exc:  # argparse's own refusals
        code, stderr = exc.code, capsys.readouterr().err
    assert code == 2
    assert message in stderr and "Traceback" not in stderr
    assert (out / "earlier.txt").read_text() == "kept" and len(list(out.iterdir())) == 1


def test_search_on_a_model_without_users_is_refused(tmp_path, cli):
    assert cli("init", "--preset", "tiny", "--out", tmp_path / "m").returncode == 0
    assert cli("export", "--model", tmp_path / "m", "--out", tmp_path / "onnx").returncode == 0
    result = cli("quantize", "--model", tmp_path / "m", "--onnx", tmp_path / "onnx",
                 "--out", tmp_path / "fp8", "--search", "--calib-data",
                 tmp_path / "m" / "histories.npy")
    assert result.returncode == 2 and "validation users" in result.stderr
    assert not (tmp_path / "fp8").exists()

"""The bench stage: alternation, paired ratios, per-backend worker processes, the report."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from onerec_trt.backends import OrtBackend
from onerec_trt.bench import BenchOptions, BenchReport, bench
from onerec_trt.bench.backends import Sources, discover, requested, to_worker
from onerec_trt.bench.pool import BackendWorker, measure
from onerec_trt.bench.stats import (
    agreement,
    alternating_order,
    exact_match,
    form_pairs,
    latency_summary,
    paired_ratio,
)
from onerec_trt.errors import UserError
from onerec_trt.model.checkpoint import model_hash

QUIET = dict(progress=False)


def test_alternating_order_flips_every_other_repetition():
    names = ["a", "b", "c"]
    orders = [alternating_order(names, rep) for rep in range(4)]
    assert orders == [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"], ["c", "b", "a"]]
    # over two repetitions every backend runs once in each half of the round
    first = {n: [o.index(n) for o in orders[:2]] for n in names}
    assert first == {"a": [0, 2], "b": [1, 1], "c": [2, 0]}


def test_paired_ratio_is_the_median_of_per_repetition_ratios():
    # a drift that slows repetitions 2-3 tenfold hits both sides of the pair
    fp8 = [1.0, 1.2, 10.0, 11.0]
    bf16 = [2.0, 2.0, 20.0, 20.0]
    r = paired_ratio(fp8, bf16)
    assert r["latency_ratio"] == pytest.approx(np.median([0.5, 0.6, 0.5, 0.55]))
    assert r["throughput_ratio"] == pytest.approx(1 / r["latency_ratio"])
    assert (r["ratio_min"], r["ratio_max"], r["repetitions"]) == (0.5, 0.6, 4)
    with pytest.raises(ValueError):
        paired_ratio([1.0], [1.0, 2.0])


def test_pairs_form_only_where_both_backends_ran():
    timings = {"ort-fp8": {1: [1.0, 1.0], 8: [2.0]}, "ort-bf16": {1: [2.0, 4.0]},
               "trt-fp8": {1: [1.0]}}
    pairs = form_pairs(timings)
    assert [(p["fp8"], p["bf16"]) for p in pairs] == [("ort-fp8", "ort-bf16")]
    assert list(pairs[0]["by_batch"]) == [1]
    assert pairs[0]["by_batch"][1]["latency_ratio"] == pytest.approx(0.375)


def test_latency_summary_and_exact_match():
    s = latency_summary([0.010, 0.020, 0.030], batch=8)
    assert s["p50_ms"] == pytest.approx(20.0)
    assert s["throughput_users_per_s"] == pytest.approx(400.0)
    assert 29.0 < s["p99_ms"] <= 30.0
    assert exact_match(np.array([[1, 2], [3, 4]]), np.array([[1, 2], [4, 3]])) == 0.5
    a = agreement([[1, 2], [3, 4]], [[0.0, -1.0], [0.0, -1.0]],
                  [[2, 1], [3, 5]], [[0.0, -1.5], [-0.5, float("-inf")]])
    assert a["exact_match"] == 0.0 and a["overlap"] == 0.75
    assert a["score_abs_diff_median"] == 0.5  # the infinite difference is left out


def _sources(root, beam=10):
    return Sources(str(root / "model"), model_hash(root / "model"), root / "onnx", root / "fp8",
                   root / "plugins", root / "engines", beam)


def test_discover_skips_with_reasons(tiny_pipeline, tmp_path):
    found, skipped = discover(requested([]), _sources(tiny_pipeline))
    names = [s.name for s in found]
    assert {"torch-fp32", "torch-bf16", "ort-bf16", "ort-fp8"} <= set(names)
    assert "TensorRT" in skipped["trt-fp8"] or "engine" in skipped["trt-fp8"]
    _, skipped = discover(["ort-bf16", "ort-fp8"], _sources(tiny_pipeline, beam=5))
    assert "exported with beam 10" in skipped["ort-bf16"]
    with pytest.raises(UserError, match="unknown backend"):
        requested(["ort-int4"])


def test_a_slow_backend_stops_with_its_reason(tiny_pipeline):
    spec = {"name": "ort-bf16", "kind": "ort", "precision": "bf16",
            "path": str(tiny_pipeline / "onnx" / "reference.cpu.onnx"), "threads": 1,
            "beam": 10, "topk": 10, "history_length": 20, "num_items": 40, "seed": 0}
    graph = OrtBackend(tiny_pipeline / "onnx" / "reference.cpu.onnx", threads=1,
                       precision="bf16")
    worker = BackendWorker("ort-bf16", 1)
    try:
        worker.call("load", spec=spec, backend=to_worker(graph))
        m = measure({"ort-bf16": worker}, [1, 2], reps=2, warmup=1, max_call_s=1e-9,
                    progress=False)
    finally:
        worker.close()
    assert m.timings["ort-bf16"] == {}
    assert "not timed at batch >= 1" in m.stopped["ort-bf16"]


def test_bench_measures_backends_side_by_side(tiny_pipeline, tmp_path):
    root, out = tiny_pipeline, tmp_path / "bench"
    broken = tmp_path / "fp8"
    shutil.copytree(root / "fp8", broken)
    x = onnx.helper.make_tensor_value_info("history", onnx.TensorProto.INT64, ["N", 20])
    y = onnx.helper.make_tensor_value_info("items", onnx.TensorProto.INT64, ["N", 10])
    unknown = onnx.helper.make_graph([onnx.helper.make_node("NoSuchOp", ["history"], ["items"])],
                                     "g", [x], [y])
    onnx.save(onnx.helper.make_model(unknown), str(broken / "fp8.cpu.onnx"))  # parses, won't run
    result = bench(BenchOptions(
        model=str(root / "model"), onnx=str(root / "onnx"), fp8=str(root / "fp8"),
        engines=str(tmp_path / "engines"), out=str(out), batches=[1, 4], reps=2, warmup=1,
        backends=["torch-bf16", "ort-bf16", "ort-fp8"], agreement_batch=6, **QUIET))
    saved = json.loads((out / "bench.json").read_text())
    assert saved["order_first_batch"] == [["torch-bf16", "ort-bf16", "ort-fp8"],
                                          ["ort-fp8", "ort-bf16", "torch-bf16"]]
    for backend in saved["backends"].values():
        assert set(backend["results"]) == {"1", "4"}
        assert all(len(v) == 2 for v in backend["latencies_s"].values())
        assert backend["memory"]["4"]["VmHWM"] > 0
    # one process per backend: the ONNX Runtime worker never imports torch
    assert saved["backends"]["ort-bf16"]["memory"]["4"]["VmHWM"] < \
        saved["backends"]["torch-bf16"]["memory"]["4"]["VmHWM"]
    pair = saved["pairs"][0]
    assert (pair["fp8"], pair["bf16"], pair["kind"]) == ("ort-fp8", "ort-bf16", "cpu-simulation")
    lat = {n: saved["backends"][n]["latencies_s"]["4"] for n in ("ort-fp8", "ort-bf16")}
    expected = np.median(np.array(lat["ort-fp8"]) / np.array(lat["ort-bf16"]))
    assert pair["by_batch"]["4"]["latency_ratio"] == pytest.approx(expected)
    same = saved["agreement"]["pairs"]["ort-bf16"]["torch-bf16"]
    assert same["exact_match"] == 1.0 and same["overlap"] == 1.0
    assert same["score_abs_diff_median"] < 1e-3
    assert set(saved["agreement"]["pairs"]["ort-fp8"]) == {"torch-bf16", "ort-bf16"}
    assert "trt-fp8" not in saved["skipped"]  # not requested
    md = (out / "bench.md").read_text()
    assert "says nothing about FP8 speed on a GPU" in md and "| ort-fp8 | 4 |" in md
    png = (out / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.request["beam"] == 10 and result == BenchReport.load(out / "bench.json")
    # a graph ONNX Runtime cannot load is skipped with the reason, not a crash
    res = bench(BenchOptions(
        model=str(root / "model"), onnx=str(root / "onnx"), fp8=str(broken),
        out=str(tmp_path / "b2"), batches=[2], reps=1, warmup=0,
        backends=["ort-bf16", "ort-fp8"], **QUIET))
    assert "failed to load" in res.skipped["ort-fp8"] and res.pairs == []


def test_cli_usage_errors(tiny_pipeline, tmp_path):
    base = [sys.executable, "-m", "onerec_trt.cli", "bench", "--model",
            str(tiny_pipeline / "model"), "--onnx", str(tiny_pipeline / "onnx")]
    bad = subprocess.run(base + ["--backends", "ort-int4", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown backend 'ort-int4'" in bad.stderr
    assert "Traceback" not in bad.stderr
    Path(tmp_path / "exists").mkdir()
    taken = subprocess.run(base + ["--out", str(tmp_path / "exists")], capture_output=True,
                           text=True)
    assert taken.returncode == 2 and "--force" in taken.stderr


def test_bench_finds_the_named_models_graphs_and_says_what_ran(tiny_pipeline, tmp_path,
                                                               monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)  # no runs/ here: the graphs beside the model folder are found
    caplog.set_level("INFO", logger="onerec_trt")
    res = bench(BenchOptions(model=str(tiny_pipeline / "model"), out=str(tmp_path / "b"),
                             batches=[1], reps=1, warmup=0, agreement_batch=2,
                             backends=["torch-fp32", "ort-bf16", "ort-fp8", "trt-fp8"], **QUIET))
    lines = caplog.messages
    assert set(res.backends) == {"torch-fp32", "ort-bf16", "ort-fp8"}
    assert res.options["onnx"] == str(tiny_pipeline / "onnx")
    assert res.options["fp8"] == str(tiny_pipeline / "fp8")
    assert f"graphs of --model {tiny_pipeline / 'model'}: {tiny_pipeline}" in lines
    assert "ran: torch-fp32, ort-bf16, ort-fp8" in lines
    assert res.skipped["trt-fp8"].startswith("no engine folder")
    assert f"skipped trt-fp8: {res.skipped['trt-fp8']}" in lines[-3:]


def test_bench_exports_the_graphs_of_a_model_without_any_into_its_out(tiny_pipeline, tmp_path,
                                                                     monkeypatch, cli, caplog):
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "lonely" / "mine"
    shutil.copytree(tiny_pipeline / "model", model)
    other = tmp_path / "runs" / "default" / "onnx"  # graphs of another model
    other.mkdir(parents=True)
    (other / "reference.cpu.onnx").write_bytes(b"")
    (other / "export.json").write_text(json.dumps({"model_sha256": "f" * 64}))
    out = tmp_path / "b"
    caplog.set_level("INFO", logger="onerec_trt")
    res = bench(BenchOptions(model=str(model), out=str(out), beam=10, batches=[1], reps=1,
                             warmup=0, agreement_batch=2,
                             backends=["torch-fp32", "ort-fp32", "ort-fp8"], **QUIET))
    lines = caplog.messages
    assert set(res.backends) == {"torch-fp32", "ort-fp32"}
    assert f"exported the graphs of --model {model} into {out / 'onnx'} (no run folder held " \
           "them; beam 10, top-K 10)" in lines
    assert (out / "onnx" / "reference.fp32.onnx").is_file() and (out / "bench.md").is_file()
    assert res.backends["ort-fp32"]["path"] == str(out / "onnx" / "reference.fp32.onnx")
    assert ".partial" not in (out / "bench.json").read_text()
    assert res.options["onnx"] == str(out / "onnx") and res.exported["options"]["beam"] == 10
    why = res.skipped["ort-fp8"]
    assert f"onerec-trt quantize --model {model} --onnx {out / 'onnx'} --out" in why
    assert f"skipped ort-fp8: {why}" in lines
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["exported"]["options"]["out"] == str(out / "onnx")
    assert "onnx/reference.fp32.onnx" in manifest["files"]
    # only graphs bench does not make are asked for: refused, naming every place looked at
    run = cli("bench", "--model", model, "--backends", "ort-fp8", "--out", tmp_path / "c")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "no exported graphs of --model" in run.stderr
    for looked in ("runs/mine/onnx/reference.cpu.onnx (not found)",
                   f"{tmp_path}/lonely/onnx/reference.cpu.onnx (not found)",
                   "runs/default/onnx/reference.cpu.onnx (exported from another model"):
        assert looked in run.stderr
    assert not (tmp_path / "runs" / "mine").exists() and not (tmp_path / "c").exists()

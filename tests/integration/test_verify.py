import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from onerec_trt.commands.backends import verify_backends
from onerec_trt.errors import UserError
from onerec_trt.verify import Gates, VerifyOptions, VerifyReport, verify


def _opts(root, out, **kw):
    return VerifyOptions(reference=str(root / "onnx" / "reference.cpu.onnx"),
                         candidate=str(root / "fp8" / "fp8.cpu.onnx"), model=str(root / "model"),
                         users=60, batch=25, out=str(out), bootstrap=200, **kw)


def _verify(opts: VerifyOptions) -> VerifyReport:
    """verify with the backends ``opts`` names, made as the CLI makes them."""
    return verify(opts, *verify_backends(opts))


def test_fp8_against_bf16_writes_a_full_report(tiny_pipeline, tmp_path):
    """The report's numbers are the saved outputs' numbers, recomputed here, and every gate's
    verdict is its value against its threshold (the default gates)."""
    from polygraphy.comparator import RunResults

    from onerec_trt.data.samplers import held_out
    from onerec_trt.metrics import overlap, per_user_recall_ndcg
    from onerec_trt.model.checkpoint import load_model

    report = _verify(_opts(tiny_pipeline, tmp_path / "v"))
    assert VerifyReport.load(tmp_path / "v" / "verify.json") == report
    results = RunResults.load(str(tmp_path / "v" / "outputs.json"))
    assert [name for name, _ in results] == ["reference:reference.cpu.onnx",
                                             "candidate:fp8.cpu.onnx"]
    ref, cand = (np.concatenate([np.asarray(it["items"]) for it in iters])
                 for _, iters in results)
    assert report.users == len(ref) == 60
    assert report.overlap_at_10 == pytest.approx(overlap(ref, cand, 10).mean())
    assert report.metrics["exact_match@10"] == pytest.approx((ref == cand).all(axis=1).mean())
    bundle = load_model(tiny_pipeline / "model")
    _, targets = held_out(bundle.load_data().split(), "test", 60, bundle.config.max_history)
    for name, which in (("recall@10", 0), ("ndcg@10", 1)):
        r, c = (per_user_recall_ndcg(x, targets, 10)[which].mean() for x in (ref, cand))
        assert report.metrics[name]["reference"] == pytest.approx(r)
        assert report.metrics[name]["candidate"] == pytest.approx(c)
    gates = Gates()
    assert report.gates["overlap@10"]["pass"] == (report.overlap_at_10 >= gates.min_overlap_at_10)
    for name, margin in (("recall@10", gates.max_recall_drop), ("ndcg@10", gates.max_ndcg_drop)):
        gate, measured = report.gates[f"{name}_relative_change"], report.metrics[name]
        low, high = measured["relative_diff_ci"]
        assert gate["ci"] == [low, high] and gate["value"] == report.relative_change(name)
        assert gate["decision"] == ("pass" if low >= -margin else
                                    "fail" if high < -margin else "inconclusive")
        assert gate["pass"] == (gate["decision"] != "fail")
        assert ("users_needed" in gate) == (gate["decision"] == "inconclusive")
    assert all(g["decision"] in ("pass", "fail", "inconclusive") and g["reason"]
               for g in report.gates.values())
    assert report.passed == all(g["decision"] != "fail" for g in report.gates.values())
    assert "onnxruntime" in report.backends["reference"]["backend"]
    md = (tmp_path / "v" / "verify.md").read_text()
    assert md.startswith(f"# verify: {report.verdict}\n")
    for name in report.inconclusive:
        gate = report.gates[name]
        assert f"inconclusive: about {gate['users_needed']:,} users needed" in md
        assert gate["reason"] in md


def _wrong_scales(tiny_pipeline, path):
    """The FP8 graph with every weight's DequantizeLinear scale 100x too small (a broken
    calibration), saved whole to ``path`` (the tiny graphs keep no external .data file)."""
    import onnx
    from onnx import numpy_helper

    from onerec_trt.graphs import data_files

    source = tiny_pipeline / "fp8" / "fp8.cpu.onnx"
    assert data_files(source) == []
    model = onnx.load(str(source))
    scales = {n.input[1] for n in model.graph.node
              if n.op_type == "DequantizeLinear" and "weight_quantizer" in n.name}
    for t in model.graph.initializer:
        if t.name in scales:
            scale = numpy_helper.to_array(t)
            t.CopyFrom(numpy_helper.from_array((scale / 100).astype(scale.dtype), t.name))
    assert scales
    onnx.save(model, str(path))
    return path


def test_identical_graphs_pass_every_gate(tiny_pipeline, tmp_path, cli):
    """Reference == candidate: every CI is exactly [0, 0], a pass (not inconclusive)."""
    reference = tiny_pipeline / "onnx" / "reference.cpu.onnx"
    opts = _opts(tiny_pipeline, tmp_path / "v")
    opts.candidate = str(reference)
    report = _verify(opts)
    assert report.passed and report.verdict == "PASS" and not report.inconclusive
    assert all(g["decision"] == "pass" for g in report.gates.values())
    for name in ("recall@10", "ndcg@10", "recall@5", "ndcg@5"):
        assert report.metrics[name]["relative_diff_ci"] == [0.0, 0.0]
        assert report.metrics[name]["users_changed"] == 0
    assert cli("verify", "--model", tiny_pipeline / "model", "--reference", reference,
               "--candidate", reference, "--users", 40, "--out", tmp_path / "c").returncode == 0


def test_wrong_fp8_scales_fail_the_recall_and_ndcg_gates(tiny_pipeline, tmp_path):
    opts = _opts(tiny_pipeline, tmp_path / "v")
    opts.candidate = str(_wrong_scales(tiny_pipeline, tmp_path / "wrong.onnx"))
    report = _verify(opts)
    assert not report.passed and report.verdict == "FAIL"
    overlap = report.gates["overlap@10"]  # the raised default gate fails it too
    assert overlap["decision"] == "fail" and report.overlap_at_10 < Gates().min_overlap_at_10
    assert "quantize --search" in overlap["reason"]
    for name in ("recall@10", "ndcg@10"):
        gate = report.gates[f"{name}_relative_change"]
        assert gate["decision"] == "fail" and not gate["pass"]
        assert gate["ci"][1] < -Gates().max_recall_drop
        assert gate["reason"] in (tmp_path / "v" / "verify.md").read_text()


def test_torch_reference_agrees_exactly_with_the_bf16_graph(tiny_pipeline, tmp_path):
    opts = _opts(tiny_pipeline, tmp_path / "t")
    opts.candidate = "torch:bf16"
    report = _verify(opts)
    assert report.passed and report.metrics["exact_match@10"] >= 0.98


def test_cli_exit_codes(tiny_pipeline, tmp_path):
    base = [sys.executable, "-m", "onerec_trt.cli", "verify", "--model",
            str(tiny_pipeline / "model"), "--reference",
            str(tiny_pipeline / "onnx" / "reference.cpu.onnx"), "--users", "40"]
    wrong = _wrong_scales(tiny_pipeline, tmp_path / "wrong.onnx")
    failing = subprocess.run(base + ["--candidate", str(wrong), "--out", str(tmp_path / "f")],
                             capture_output=True, text=True)
    assert failing.returncode == 1, failing.stderr
    assert failing.stdout.startswith("# verify: FAIL")
    assert "| recall@10_relative_change |" in failing.stdout
    usage = subprocess.run(base + ["--candidate", "model.bin", "--out", str(tmp_path / "u")],
                           capture_output=True, text=True)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_confidence_outside_0_1_is_a_usage_error(tiny_pipeline, capsys):
    from onerec_trt.cli import main

    for level in ("1.5", "0", "x"):
        with pytest.raises(SystemExit) as exit_:
            main(["verify", "--model", str(tiny_pipeline / "model"), "--confidence", level])
        assert exit_.value.code == 2
    assert "--confidence" in capsys.readouterr().err


def test_graph_from_another_model_is_refused(tiny_pipeline, tmp_path):
    fake = tmp_path / "other"
    shutil.copytree(tiny_pipeline / "fp8", fake)
    manifest = json.loads((fake / "manifest.json").read_text())
    manifest["inputs"]["model"] = "0" * 64
    (fake / "manifest.json").write_text(json.dumps(manifest))
    opts = _opts(tiny_pipeline, tmp_path / "x")
    opts.candidate = str(fake / "fp8.cpu.onnx")
    with pytest.raises(UserError, match="another model"):
        _verify(opts)


def test_graphs_with_different_outputs_are_refused(tiny_pipeline, tmp_path):
    import onnx

    model = onnx.load(str(tiny_pipeline / "onnx" / "reference.cpu.onnx"))
    model.graph.output.pop()
    onnx.save(model, str(tmp_path / "cut.onnx"))
    opts = _opts(tiny_pipeline, tmp_path / "x")
    opts.candidate = str(tmp_path / "cut.onnx")
    with pytest.raises(UserError, match="differ from the reference"):
        _verify(opts)


def test_empty_user_sample_is_refused(tiny_pipeline, tmp_path):
    opts = _opts(tiny_pipeline, tmp_path / "x")
    opts.users = 0
    with pytest.raises(UserError, match="must be positive"):
        _verify(opts)


def test_graphs_exported_with_topk_below_10_are_refused_at_the_start(tiny_pipeline, tmp_path,
                                                                       cli):
    """Issue 28 item 18: verify's gates are @10; a --topk 3 graph is one line, nothing written
    (from its export.json before anything runs; from its outputs where it has none)."""
    model, out = tiny_pipeline / "model", tmp_path / "v"
    assert cli("export", "--model", model, "--beam", "4", "--topk", "3", "--out",
               tmp_path / "e").returncode == 0
    graph = tmp_path / "e" / "reference.cpu.onnx"
    run = cli("verify", "--model", model, "--reference", graph, "--candidate", "torch",
              "--users", 20, "--out", out)
    assert run.returncode == 2 and "Traceback" not in run.stderr and not out.exists()
    assert f"--reference {graph} returns 3 items per user; verify compares the top 10" \
           in run.stderr and "export with --topk 10 or more" in run.stderr
    bare = tmp_path / "bare"  # the graph alone: no export.json beside it
    bare.mkdir()
    shutil.copy(graph, bare / "g.onnx")
    opts = _opts(tiny_pipeline, out)
    opts.reference = opts.candidate = str(bare / "g.onnx")
    with pytest.raises(UserError, match="the reference returns 3 items per user"):
        _verify(opts)
    assert not out.exists()

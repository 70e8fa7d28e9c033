import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from onerec_trt.errors import UserError
from onerec_trt.verify import Gates, VerifyOptions, VerifyReport, verify


def _opts(root, out, **kw):
    return VerifyOptions(reference=str(root / "onnx" / "reference.cpu.onnx"),
                         candidate=str(root / "fp8" / "fp8.cpu.onnx"), model=str(root / "model"),
                         users=60, batch=25, out=str(out), bootstrap=200, **kw)


def test_fp8_against_bf16_writes_a_full_report(tiny_pipeline, tmp_path):
    """The report's numbers are the saved outputs' numbers, recomputed here, and every gate's
    verdict is its value against its threshold (the default gates)."""
    from polygraphy.comparator import RunResults

    from onerec_trt.data.samplers import held_out
    from onerec_trt.metrics import overlap, per_user_recall_ndcg
    from onerec_trt.model.checkpoint import load_model

    report = verify(_opts(tiny_pipeline, tmp_path / "v"), log=lambda *_: None)
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
    assert report.gates["recall@10_relative_change"]["pass"] == (
        report.relative_change("recall@10") >= -gates.max_recall_drop)
    assert report.passed == all(g["pass"] for g in report.gates.values())
    assert "onnxruntime" in report.backends["reference"]["backend"]
    verdict = "PASS" if report.passed else "FAIL"
    assert (tmp_path / "v" / "verify.md").read_text().startswith(f"# verify: {verdict}")


def test_torch_reference_agrees_exactly_with_the_bf16_graph(tiny_pipeline, tmp_path):
    opts = _opts(tiny_pipeline, tmp_path / "t")
    opts.candidate = "torch:bf16"
    report = verify(opts, log=lambda *_: None)
    assert report.passed and report.metrics["exact_match@10"] >= 0.98


def test_cli_exit_codes(tiny_pipeline, tmp_path):
    base = [sys.executable, "-m", "onerec_trt.cli", "verify", "--model",
            str(tiny_pipeline / "model"), "--reference",
            str(tiny_pipeline / "onnx" / "reference.cpu.onnx"), "--users", "40"]
    failing = subprocess.run(base + ["--candidate", str(tiny_pipeline / "fp8" / "fp8.cpu.onnx"),
                                     "--out", str(tmp_path / "f"), "--min-overlap", "1.01"],
                             capture_output=True, text=True)
    assert failing.returncode == 1, failing.stderr
    assert "FAIL" in failing.stdout
    usage = subprocess.run(base + ["--candidate", "model.bin", "--out", str(tmp_path / "u")],
                           capture_output=True, text=True)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_graph_from_another_model_is_refused(tiny_pipeline, tmp_path):
    fake = tmp_path / "other"
    shutil.copytree(tiny_pipeline / "fp8", fake)
    manifest = json.loads((fake / "manifest.json").read_text())
    manifest["inputs"]["model"] = "0" * 64
    (fake / "manifest.json").write_text(json.dumps(manifest))
    opts = _opts(tiny_pipeline, tmp_path / "x")
    opts.candidate = str(fake / "fp8.cpu.onnx")
    with pytest.raises(UserError, match="another model"):
        verify(opts, log=lambda *_: None)


def test_graphs_with_different_outputs_are_refused(tiny_pipeline, tmp_path):
    import onnx

    model = onnx.load(str(tiny_pipeline / "onnx" / "reference.cpu.onnx"))
    model.graph.output.pop()
    onnx.save(model, str(tmp_path / "cut.onnx"))
    opts = _opts(tiny_pipeline, tmp_path / "x")
    opts.candidate = str(tmp_path / "cut.onnx")
    with pytest.raises(UserError, match="differ from the reference"):
        verify(opts, log=lambda *_: None)


def test_empty_user_sample_is_refused(tiny_pipeline, tmp_path):
    opts = _opts(tiny_pipeline, tmp_path / "x")
    opts.users = 0
    with pytest.raises(UserError, match="must be positive"):
        verify(opts, log=lambda *_: None)

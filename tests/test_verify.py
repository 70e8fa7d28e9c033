import json
import shutil
import subprocess
import sys

import pytest

from onerec_trt.errors import UserError
from onerec_trt.verify import Gates, VerifyOptions, verify


def _opts(root, out, **kw):
    return VerifyOptions(reference=str(root / "onnx" / "reference.cpu.onnx"),
                         candidate=str(root / "fp8" / "fp8.cpu.onnx"), model=str(root / "model"),
                         users=60, batch=25, out=str(out), bootstrap=200, **kw)


def test_fp8_against_bf16_writes_a_full_report(tiny_pipeline, tmp_path):
    report = verify(_opts(tiny_pipeline, tmp_path / "v", gates=Gates(0.5, 1.0, 1.0)),
                    log=lambda *_: None)
    saved = json.loads((tmp_path / "v" / "verify.json").read_text())
    assert saved["pass"] is True and report["pass"] is True
    assert saved["users"] == 60
    for key in ("overlap@10", "jaccard@10", "exact_match@10", "rank_correlation@10"):
        assert 0 <= saved["metrics"][key] <= 1 or key == "rank_correlation@10"
    for name in ("recall@10", "ndcg@10"):
        assert set(saved["metrics"][name]) >= {"reference", "candidate", "relative_diff"}
    assert "onnxruntime" in saved["backends"]["reference"]["backend"]
    assert (tmp_path / "v" / "verify.md").read_text().startswith("# verify: PASS")
    from polygraphy.comparator import RunResults

    results = RunResults.load(str(tmp_path / "v" / "outputs.json"))
    assert [name for name, _ in results] == ["reference:reference.cpu.onnx",
                                             "candidate:fp8.cpu.onnx"]


def test_torch_reference_agrees_exactly_with_the_bf16_graph(tiny_pipeline, tmp_path):
    opts = _opts(tiny_pipeline, tmp_path / "t")
    opts.candidate = "torch:bf16"
    report = verify(opts, log=lambda *_: None)
    assert report["pass"] and report["metrics"]["exact_match@10"] >= 0.98


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

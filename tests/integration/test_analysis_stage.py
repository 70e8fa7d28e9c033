"""``onerec-trt analyze`` end to end on the tiny trained model: the report's files and keys, the
activations' provenance (real generation, all beams), the reference models, the exclusions
hand-off to the quantize stage, and one-line errors."""

import json
import subprocess
import sys

import pytest
from torch import nn

from onerec_trt import cli
from onerec_trt.analysis.lm import lm_available
from onerec_trt.data import load_dataset
from onerec_trt.model.checkpoint import load_model
from onerec_trt.quantize import QuantizeOptions, quantize

SUMMARY = ("variance_max", "variance_median", "absmax_max", "kurtosis_median")


@pytest.fixture(scope="module")
def analysis(tiny_pipeline):
    out = tiny_pipeline / "analysis"
    # threshold 100 dB: every layer is "too lossy", so the exclusions are non-empty
    code = cli.main(["analyze", "--model", str(tiny_pipeline / "model"), "--out", str(out),
                     "--beam", "10", "--traditional-steps", "40", "--traditional-samples",
                     "512", "--lm-sentences", "24", "--threshold-db", "100", "--gpus",
                     "H100-SXM,A100", "--quiet"])
    assert code == 0
    return out, json.loads((out / "report.json").read_text())


def test_report_folder_has_every_artifact(analysis):
    out, report = analysis
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "report.json", "exclusions.json", "manifest.json", "histograms.png",
            "fp8_sqnr.png", "roofline.png"} <= names
    for png in ("histograms.png", "fp8_sqnr.png", "roofline.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "analyze" and "report.json" in manifest["files"]
    text = (out / "report.md").read_text()
    assert "Verdict" in text or "Not judged" in text
    assert "## 4. Is FP8 worth it?" in text


def test_report_json_has_the_promised_keys(analysis):
    _, report = analysis
    models = report["models"]
    expected = ["onerec", "traditional"] + ([] if lm_available() else ["lm"])
    for key in expected:
        for group in ("weights", "activations"):
            for stat in SUMMARY:
                assert isinstance(models[key][group][stat], float), (key, group, stat)
    for preset in ("onerec", "paper", "traditional"):
        assert "predicted_speedup" in report["roofline"][preset]["H100-SXM"]
        assert report["roofline"][preset]["A100"]["predicted_speedup"] is None
    assert report["roofline"]["paper"]["H100-SXM"]["predicted_speedup"] > 1.0
    # every layer excluded: the analyzed model's FP8 engine is predicted no faster than BF16
    assert report["roofline"]["onerec"]["H100-SXM"]["predicted_speedup"] == pytest.approx(1.0)
    assert report["comparison"]["holds"] in (True, False, None)
    trained = models["traditional"]["training"]
    assert trained["test_auc"] > 0.55  # 40 steps already learn something real


def test_activations_come_from_the_real_generation_with_all_beams(analysis, tiny_pipeline):
    _, report = analysis
    layers = report["models"]["onerec"]["layers"]
    bundle = load_model(tiny_pipeline / "model")
    data = load_dataset("sequences", bundle.training["data"], vocab=bundle.vocab)
    split = data.split()
    users, beam, levels = split.num_users, 10, bundle.config.levels
    s = bundle.config.max_history
    real_tokens = sum(min(len(h), s) for h in split.train)
    assert report["models"]["onerec"]["activation_data"]["users"] == users
    assert layers["context.blocks.0.attn.qkv"]["rows_seen"] == real_tokens  # padding left out
    assert layers["blocks.0.self_attn.qkv"]["rows_seen"] == users * beam * levels
    for step in range(levels):
        assert layers[f"heads.{step}"]["rows_seen"] == users * beam


def test_exclusions_file_is_read_by_the_quantize_stage(analysis, tiny_pipeline, tmp_path):
    out, _ = analysis
    excl = json.loads((out / "exclusions.json").read_text())
    bundle = load_model(tiny_pipeline / "model")
    linear = [n for n, m in bundle.model.named_modules() if isinstance(m, nn.Linear)]
    assert excl["exclude"] == linear and excl["threshold_db"] == 100.0
    assert all("dB" in excl["reasons"][n] for n in linear)
    keep = {"exclude": excl["exclude"][:2], **{k: v for k, v in excl.items() if k != "exclude"}}
    (tmp_path / "some.json").write_text(json.dumps(keep))
    report = quantize(QuantizeOptions(model=str(tiny_pipeline / "model"),
                                      onnx=str(tiny_pipeline / "onnx"), out=str(tmp_path / "q"),
                                      calib_users=32, calib_batch=16, default_exclusions=False,
                                      exclusions=str(tmp_path / "some.json")))
    assert sorted(report.excluded_gemms) == sorted(linear[:2])
    assert all("exclusions file" in why for why in report.excluded_gemms.values())
    assert not report.unknown_exclusions


def test_language_model_side(analysis):
    reason = lm_available()
    if reason:
        pytest.skip(f"language model package absent: {reason}")
    lm = analysis[1]["models"]["lm"]
    assert lm["activation_data"]["sentences"] == 24 and lm["activation_data"]["tokens"] > 24
    assert len(lm["layers"]) == 37  # 6 BERT layers x 6 GEMMs + the pooler
    assert lm["weights"]["layers"] == 37


def _run(*args):
    return subprocess.run([sys.executable, "-m", "onerec_trt.cli", "analyze", *map(str, args)],
                          capture_output=True, text=True, env={"OMP_NUM_THREADS": "1",
                                                              "PATH": "/usr/bin:/bin"})


def test_a_folder_that_is_not_a_model_is_one_clear_line(tmp_path):
    proc = _run("--model", tmp_path, "--out", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    assert "is not a model folder" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2  # the error and its note
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--gpus", "B200"], "unknown GPU 'B200'"),
    (["--references", "dlrm"], "unknown reference model 'dlrm'"),
    (["--presets", "huge"], "unknown preset 'huge'"),
    (["--calib-users", "0"], "--calib-users must be positive"),
])
def test_bad_options_are_one_clear_line(args, message, tmp_path, capsys):
    code = cli.main(["analyze", "--model", "default", *args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_existing_output_is_refused(analysis, tiny_pipeline, capsys):
    out, report = analysis
    code = cli.main(["analyze", "--model", str(tiny_pipeline / "model"), "--out", str(out)])
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert json.loads((out / "report.json").read_text()) == report  # untouched

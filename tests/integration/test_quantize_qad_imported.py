"""``quantize --qad`` on an imported Qwen3 (``train --arch qwen3``: a transformers checkpoint
imported with its training data): the student folder, its FP8 graphs, verify against the
teacher; one line for what --qad does not distil."""

import json

import numpy as np
import pytest

from helpers import write_sequences
from onerec_trt.cli import main as cli_main
from onerec_trt.commands.backends import verify_backends
from onerec_trt.errors import UserError
from onerec_trt.quantize import QuantizeOptions, quantize
from onerec_trt.verify import VerifyOptions, verify


def _export(model, out) -> None:
    assert cli_main(["export", "--model", str(model), "--beam", "10", "--topk", "10", "--out",
                     str(out)]) == 0


@pytest.fixture(scope="module")
def qwen3_run(tmp_path_factory):
    """A tiny Qwen3 trained by ``train --arch qwen3`` (imported), exported, then
    ``quantize --qad 0.1``. Trained for 10 epochs: after 3 its FP8 error (held-out KL about
    6e-5) is below the noise of a few AdamW steps, after 10 about 1e-3, which 0.1 min of QAD
    cut to 4e-4 (126 steps)."""
    root = tmp_path_factory.mktemp("qad_qwen3")
    data = write_sequences(root / "seq.txt", users=200, items=40)
    assert cli_main(["train", "--arch", "qwen3", "--d-model", "16", "--layers", "1", "--heads",
                     "2", "--max-history", "8", "--warmup-steps", "5", "--dataset", "sequences",
                     "--data", str(data), "--epochs", "10", "--batch-size", "8", "--eval-users",
                     "10", "--codebook", "8", "--quiet", "--out", str(root / "model")]) == 0
    _export(root / "model", root / "onnx")
    report = quantize(QuantizeOptions(model=str(root / "model"), onnx=str(root / "onnx"),
                                      out=str(root / "fp8"), calib_users=32, calib_batch=16,
                                      qad=0.1))
    return root, report


@pytest.fixture(scope="module")
def unrelated(tmp_path_factory):
    """A random tiny Qwen3 checkpoint imported without data, exported."""
    from hf_checkpoints import tiny_qwen3

    root = tmp_path_factory.mktemp("unrelated")
    checkpoint, catalogue = tiny_qwen3(root / "checkpoint", items=20)
    assert cli_main(["import", "--hf", str(checkpoint), "--catalogue", str(catalogue),
                     "--max-history", "6", "--histories", "16", "--out",
                     str(root / "model")]) == 0
    _export(root / "model", root / "onnx")
    return root


def _verify(root, candidate, out, **users):
    opts = VerifyOptions(reference=str(root / "onnx" / "reference.cpu.onnx"),
                         candidate=str(candidate), model=str(root / "model"), batch=25,
                         out=str(out), bootstrap=50, **users)
    return verify(opts, *verify_backends(opts))


def test_the_student_is_an_imported_folder_that_records_its_teacher(qwen3_run):
    from onerec_trt.graphs import make_session
    from onerec_trt.model.checkpoint import load_model, model_hash, read_training
    from onerec_trt.model.folder import folder_kind

    root, report = qwen3_run
    student, teacher = root / "fp8" / "student", root / "model"
    record = read_training(student)["qad"]
    assert record["teacher_sha256"] == model_hash(teacher) == report.qad["teacher_sha256"]
    assert record["steps_run"] > 0 and record["bf16_layers"] == ["backbone.lm_head"]
    assert report.qad["student_sha256"] == model_hash(student) != model_hash(teacher)
    assert folder_kind(student) == "imported"
    for name in ("import.json", "items.json", "tokenizer.json", "semantic_ids.safetensors",
                 "hf/config.json", "hf/tokenizer.json"):
        assert (student / name).read_bytes() == (teacher / name).read_bytes(), name
    assert read_training(student)["arch"] == "qwen3"
    bundle = load_model(student)
    assert not any("_quantizer" in k for k in bundle.model.state_dict())
    assert (root / "fp8" / "student_onnx" / "reference.cpu.onnx").is_file()
    manifest = json.loads((root / "fp8" / "manifest.json").read_text())
    assert manifest["inputs"]["model"] == model_hash(student)
    assert manifest["inputs"]["teacher"] == model_hash(teacher)
    session = make_session(str(root / "fp8" / "fp8.cpu.onnx"))
    history = np.load(teacher / "histories.npy")[:2]
    assert session.run(None, {session.get_inputs()[0].name: history})[0].shape[0] == 2


def test_qad_cuts_the_held_out_kl_of_an_imported_model(qwen3_run):
    kl = qwen3_run[1].qad["held_out_kl"]
    print(f"held-out next-token KL: {kl['before']:.4g} -> {kl['after']:.4g}")
    assert kl["after"] < kl["before"]


def test_verify_accepts_the_student_against_the_teachers_reference(qwen3_run, tmp_path):
    root, _ = qwen3_run
    result = _verify(root, root / "fp8" / "fp8.cpu.onnx", tmp_path / "v", users=60)
    print(f"overlap@10 of the student's FP8 graph vs the teacher's bf16 graph (ONNX Runtime "
          f"CPU, 60 test users): {result.overlap_at_10:.4f}")
    assert result.users == 60 and 0.0 < result.overlap_at_10 <= 1.0


def test_verify_refuses_the_student_against_an_unrelated_model(qwen3_run, unrelated,
                                                               tmp_path):
    root, _ = qwen3_run
    with pytest.raises(UserError, match="made from another model"):
        _verify(unrelated, root / "fp8" / "fp8.cpu.onnx", tmp_path / "v",
                histories=str(unrelated / "model" / "histories.npy"))


def _refused(cli, model, onnx, out, *named):
    result = cli("quantize", "--model", model, *named, "--onnx", onnx, "--out", out, "--qad",
                 "0.1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) <= 2
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))
    return result.stderr


def test_an_imported_model_without_training_data_is_refused(unrelated, tmp_path, cli):
    stderr = _refused(cli, unrelated / "model", unrelated / "onnx", tmp_path / "fp8")
    assert "--qad needs the model's training data" in stderr


@pytest.mark.parametrize("kind, expected", [
    ("qwen2", "is an imported qwen2"),
    ("factory", "is a factory model"),
])
def test_other_imported_families_and_factories_are_refused(tmp_path, cli, kind, expected):
    from hf_checkpoints import tiny_causal_lm

    model, named = tmp_path / "model", []
    if kind == "factory":
        named = ["--factory", "hf_checkpoints:onerec_factory"]
        assert cli("import", *named, "--histories", 8, "--out", model).returncode == 0
    else:
        checkpoint, catalogue = tiny_causal_lm(tmp_path / "checkpoint", kind, items=20)
        assert cli("import", "--hf", checkpoint, "--catalogue", catalogue, "--max-history", 4,
                   "--histories", 8, "--out", model).returncode == 0
    assert cli("export", "--model", model, *named, "--beam", 10, "--topk", 10, "--out",
               tmp_path / "onnx").returncode == 0
    stderr = _refused(cli, model, tmp_path / "onnx", tmp_path / "fp8", *named)
    assert "--qad distils native models and imported qwen3 checkpoints" in stderr
    assert expected in stderr

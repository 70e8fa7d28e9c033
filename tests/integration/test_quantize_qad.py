"""``quantize --qad``: the distilled student, its FP8 graphs, and verify against the teacher."""

import json
import shutil

import numpy as np
import pytest

from onerec_trt.commands.backends import verify_backends
from onerec_trt.errors import UserError
from onerec_trt.quantize import QuantizeOptions, QuantizeReport, quantize
from onerec_trt.verify import VerifyOptions, verify


@pytest.fixture(scope="module")
def qad_run(tiny_pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("qad") / "fp8"
    report = quantize(QuantizeOptions(model=str(tiny_pipeline / "model"),
                                      onnx=str(tiny_pipeline / "onnx"), out=str(out),
                                      calib_users=64, calib_batch=16, qad=0.1))
    return out, report


def _verify(root, candidate, out):
    opts = VerifyOptions(reference=str(root / "onnx" / "reference.cpu.onnx"),
                         candidate=str(candidate), model=str(root / "model"), users=60,
                         batch=25, out=str(out), bootstrap=50)
    return verify(opts, *verify_backends(opts))


def test_qad_writes_a_student_that_records_its_teacher(tiny_pipeline, qad_run):
    from onerec_trt.graphs import make_session
    from onerec_trt.model.checkpoint import load_model, model_hash, read_training

    out, report = qad_run
    teacher = model_hash(tiny_pipeline / "model")
    student = out / "student"
    record = read_training(student)["qad"]
    assert record["teacher_sha256"] == teacher == report.qad["teacher_sha256"]
    assert report.qad["student"] == str(student) and record["minutes"] == 0.1
    assert record["steps_run"] > 0 and report.qad["student_sha256"] == model_hash(student)
    assert report.qad["student_sha256"] != teacher
    assert QuantizeReport.load(out / "quantize_report.json").qad == report.qad
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["model"] == model_hash(student)
    assert manifest["inputs"]["teacher"] == teacher
    assert manifest["inputs"]["onnx"] == str(tiny_pipeline / "onnx")
    assert not any("_quantizer" in k for k in load_model(student).model.state_dict())
    session = make_session(str(out / "fp8.cpu.onnx"))
    length = load_model(student).config.max_history
    history = np.zeros((2, length), dtype=np.int64)
    history[:, -3:] = [1, 2, 3]
    items = session.run(None, {session.get_inputs()[0].name: history})[0]
    assert items.shape[0] == 2


def test_qad_cuts_the_held_out_kl(qad_run):
    """The distillation works on the FP8 student: its code distributions move toward the
    teacher's on training windows it never stepped on (torch fake quantization)."""
    kl = qad_run[1].qad["held_out_kl"]
    assert kl["after"] < kl["before"]


def test_verify_accepts_the_student_against_the_teachers_reference(tiny_pipeline, qad_run,
                                                                  tmp_path):
    """The comparison a user cares about: the student's FP8 graph against the teacher's bf16
    graph (ONNX Runtime CPU), beside PTQ's FP8 graph against the same reference and users."""
    out, _ = qad_run
    student = _verify(tiny_pipeline, out / "fp8.cpu.onnx", tmp_path / "s")
    ptq = _verify(tiny_pipeline, tiny_pipeline / "fp8" / "fp8.cpu.onnx", tmp_path / "p")
    print(f"overlap@10 vs teacher bf16 (ONNX Runtime CPU, 60 test users): QAD student FP8 "
          f"{student.overlap_at_10:.4f}, PTQ FP8 {ptq.overlap_at_10:.4f}")
    assert student.users == ptq.users == 60
    assert 0.0 < student.overlap_at_10 <= 1.0


def test_verify_refuses_a_student_of_another_model(tiny_pipeline, qad_run, tmp_path):
    out, _ = qad_run
    copy = tmp_path / "fp8"
    shutil.copytree(out, copy)
    training = copy / "student" / "training.json"
    record = json.loads(training.read_text())
    record["qad"]["teacher_sha256"] = "f" * 64
    training.write_text(json.dumps(record))
    with pytest.raises(UserError, match="made from another model"):
        _verify(tiny_pipeline, copy / "fp8.cpu.onnx", tmp_path / "v")


def test_qad_refuses_a_model_whose_training_data_is_gone(tiny_pipeline, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_pipeline / "model", model)
    record = json.loads((model / "training.json").read_text())
    record["data"] = str(tmp_path / "gone.txt")
    (model / "training.json").write_text(json.dumps(record))
    with pytest.raises(UserError) as info:
        quantize(QuantizeOptions(model=str(model), onnx=str(tiny_pipeline / "onnx"),
                                 out=str(tmp_path / "fp8"), qad=0.1))
    print(info.value)
    assert not (tmp_path / "fp8").exists()


@pytest.mark.parametrize("extra, expected", [
    (["--qad", "-1"], "--qad takes minutes of distillation"),
    (["--qad", "0.1", "--calibration", "x.json"], "--qad and --calibration contradict"),
])
def test_bad_qad_options_are_one_line_and_write_nothing(tiny_pipeline, tmp_path, cli, extra,
                                                        expected):
    out = tmp_path / "fp8"
    result = cli("quantize", "--model", tiny_pipeline / "model", "--onnx",
                 tiny_pipeline / "onnx", "--out", out, *extra)
    assert result.returncode == 2 and expected in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 2
    assert not out.exists() and not list(tmp_path.glob(".fp8*"))

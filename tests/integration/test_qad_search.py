"""``quantize --qad --search``: the student's candidates are measured against the teacher's
bf16 items (the comparison verify makes), not against the student's own bf16."""

import numpy as np
import torch

from onerec_trt.layout import SEARCH_MD
from onerec_trt.model.checkpoint import load_model
from onerec_trt.model.generate import Generator
from onerec_trt.quantize import QuantizeOptions, quantize
from onerec_trt.quantize.choose import teacher_items


def test_teacher_items_are_the_bf16_loop_of_the_teacher(tiny_pipeline):
    bundle = load_model(str(tiny_pipeline / "model"), torch.bfloat16)
    model = bundle.model.eval()
    like = Generator(model, 6, 5).eval()  # the teacher's loop takes its beam and top-K
    rng = np.random.default_rng(0)
    histories = rng.integers(1, 40, size=(24, bundle.config.max_history)).astype(np.int64)
    items = teacher_items(model, like, histories, 7)  # batches of 7: the last one short
    assert items.shape == (24, 5)
    with torch.no_grad():
        np.testing.assert_array_equal(items, like(torch.from_numpy(histories))[0].numpy())


def test_qad_search_measures_against_the_teacher(tiny_pipeline, tmp_path):
    report = quantize(QuantizeOptions(
        model=str(tiny_pipeline / "model"), onnx=str(tiny_pipeline / "onnx"),
        out=str(tmp_path / "fp8"), calib_users=32, calib_batch=16, qad=0.05, search=True,
        search_users=30, calib_method="max"))
    chosen = report.policy["chosen"]
    assert chosen["reference"] == "the teacher's bf16"
    assert set(chosen["reference_metrics"]) == {"recall@10", "ndcg@10"}
    assert "against the teacher's bf16" in (tmp_path / "fp8" / SEARCH_MD).read_text()
    assert report.qad["teacher_sha256"] != report.qad["student_sha256"]
    steps = [r["step"] for r in report.pareto["rows"]]
    assert "all but heads" in steps

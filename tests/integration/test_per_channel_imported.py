"""``quantize --weight-scales per-channel`` on an imported transformers model (a tiny Qwen3):
1-D weight scales on every FP8 GEMM, a lint-clean graph, and the search's Pareto rows."""

import json

import onnx
import pytest
from onnx import TensorProto

from onerec_trt.cli import main as cli_main
from onerec_trt.layout import FP8_GRAPH
from onerec_trt.lint import lint
from onerec_trt.quantize import QuantizeReport


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from hf_checkpoints import tiny_qwen3

    root = tmp_path_factory.mktemp("pc_qwen3")
    checkpoint, catalogue = tiny_qwen3(root / "checkpoint", items=20)
    assert cli_main(["import", "--hf", str(checkpoint), "--catalogue", str(catalogue),
                     "--max-history", "6", "--histories", "32", "--out",
                     str(root / "model")]) == 0
    assert cli_main(["export", "--model", str(root / "model"), "--beam", "6", "--topk", "5",
                     "--out", str(root / "onnx")]) == 0
    return root


def test_per_channel_weights_on_an_imported_model(imported, tmp_path):
    out = tmp_path / "pc"
    assert cli_main(["quantize", "--model", str(imported / "model"), "--onnx",
                     str(imported / "onnx"), "--out", str(out), "--histories",
                     str(imported / "model" / "histories.npy"),
                     "--weight-scales", "per-channel"]) == 0
    report = QuantizeReport.load(out / "quantize_report.json")
    assert report.policy["weight_scales"] == "per-channel"
    assert report.quantized_gemms
    assert any(k.endswith("lm_head") for k in report.excluded_gemms)
    g = onnx.load(str(out / FP8_GRAPH)).graph
    inits = {t.name: t for t in g.initializer}
    weight_dqs = [n for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                  and inits[n.input[0]].data_type == TensorProto.FLOAT8E4M3FN]
    assert len({n.input[0] for n in weight_dqs}) == len(report.quantized_gemms)
    for dq in weight_dqs:
        weight, scale = inits[dq.input[0]], inits[dq.input[1]]
        axis = [a.i for a in dq.attribute if a.name == "axis"]
        assert len(scale.dims) == 1 and scale.dims[0] == weight.dims[axis[0]]
    checked = lint(out / FP8_GRAPH)
    assert checked.ok, [str(p) for p in checked.problems]
    saved = json.loads((out / "calibration.json").read_text())
    assert all(isinstance(v, list) == k.endswith("weight_quantizer")
               for k, v in saved["amax"].items())
    speedup = report.predicted_speedup
    assert speedup["label"].startswith("predicted") and set(speedup["over_bf16"]) == {
        "H100-SXM", "H200"}
    assert report.predicted_speedup["basis"].startswith("Amdahl")  # counted GEMM FLOPs

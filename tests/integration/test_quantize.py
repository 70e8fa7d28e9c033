import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from helpers import random_histories
from onerec_trt.errors import UserError
from onerec_trt.graphs import make_session
from onerec_trt.layout import FP8_CPU_GRAPH, FP8_GRAPH
from onerec_trt.quantize import QuantizeOptions, QuantizeReport, quantize
from onerec_trt.quantize.qdq import FP8_ZERO, swap_fp8_transpose


def _consumers(graph):
    out = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def test_every_gemm_weight_and_input_is_fed_by_standard_fp8_dq(tiny_pipeline):
    model = onnx.load(str(tiny_pipeline / "fp8" / FP8_GRAPH))
    g = model.graph
    assert not any(n.domain for n in g.node), "no trt-domain nodes may remain"
    producer = {o: n for n in g.node for o in n.output}
    zero = next(t for t in g.initializer if t.name == FP8_ZERO)
    assert zero.data_type == TensorProto.FLOAT8E4M3FN

    def source(name):  # skip data movement between DQ and the GEMM
        node = producer.get(name)
        while node is not None and node.op_type in ("Transpose", "Reshape"):
            node = producer.get(node.input[0])
        return node

    weight_matmuls = [n for n in g.node if n.op_type == "MatMul"
                      and source(n.input[1]) is not None
                      and source(n.input[1]).op_type == "DequantizeLinear"]
    report = QuantizeReport.load(tiny_pipeline / "fp8" / "quantize_report.json")
    assert len(report.quantized_gemms) > 0
    # the default policy keeps the output heads and the context K/V projections in bf16
    assert report.excluded_gemms and all(
        k.startswith("heads.") or "kv_proj" in k for k in report.excluded_gemms)
    assert all(v.startswith("default policy") for v in report.excluded_gemms.values())
    assert len(weight_matmuls) >= len(report.quantized_gemms)
    for mm in weight_matmuls:
        assert source(mm.input[0]).op_type == "DequantizeLinear", mm.name


def test_fp8_cpu_graph_runs_and_stays_close_to_bf16(tiny_pipeline):
    hist = random_histories(64, 20, 40, seed=5).numpy()
    ref = make_session(tiny_pipeline / "onnx" / "reference.cpu.onnx").run(None, {"history": hist})
    fp8 = make_session(tiny_pipeline / "fp8" / FP8_CPU_GRAPH).run(None, {"history": hist})
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ref[0], fp8[0], strict=True)])
    assert overlap >= 0.8
    assert np.isfinite(fp8[1]).all() and fp8[1].dtype == np.float32


def test_quantize_all_leaves_nothing_in_bf16(tiny_pipeline, tmp_path):
    report = quantize(QuantizeOptions(
        model=str(tiny_pipeline / "model"), onnx=str(tiny_pipeline / "onnx"),
        out=str(tmp_path / "all"), default_exclusions=False))
    assert not report.excluded_gemms
    assert any(k.startswith("heads.") for k in report.quantized_gemms)


def test_calibration_file_reproduces_the_graph(tiny_pipeline, tmp_path):
    calib = tiny_pipeline / "fp8" / "calibration.json"
    saved = json.loads(calib.read_text())
    assert saved["amax"] and all(v > 0 for v in saved["amax"].values())
    quantize(QuantizeOptions(model=str(tiny_pipeline / "model"), onnx=str(tiny_pipeline / "onnx"),
                             out=str(tmp_path / "again"), calibration=str(calib)))
    hist = random_histories(16, 20, 40, seed=6).numpy()
    a = make_session(tiny_pipeline / "fp8" / FP8_CPU_GRAPH).run(None, {"history": hist})
    b = make_session(tmp_path / "again" / FP8_CPU_GRAPH).run(None, {"history": hist})
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], atol=1e-6)


def test_exclusion_by_regex_is_reported(tiny_pipeline, tmp_path):
    report = quantize(QuantizeOptions(
        model=str(tiny_pipeline / "model"), onnx=str(tiny_pipeline / "onnx"),
        out=str(tmp_path / "ex"), calib_users=32, calib_batch=16, exclude=[r"^heads\."],
        default_exclusions=False))
    assert report.excluded_gemms and all(k.startswith("heads.") for k in
                                            report.excluded_gemms)
    assert all(v == r"--exclude ^heads\." for v in report.excluded_gemms.values())


@pytest.mark.parametrize("array, message", [
    (np.ones((4, 7), dtype=np.int64), "has shape"),
    (np.full((4, 20), np.nan), "NaN or inf"),
    (np.full((4, 20), 10_000), "outside"),
    (np.zeros((4, 20), dtype=np.int64), "the history is all padding"),
])
def test_bad_calibration_data_is_one_clear_error(tiny_pipeline, tmp_path, array, message):
    path = tmp_path / "calib.npy"
    np.save(path, array)
    out = tmp_path / "out"
    with pytest.raises(UserError, match=message):
        quantize(QuantizeOptions(model=str(tiny_pipeline / "model"),
                                 onnx=str(tiny_pipeline / "onnx"), out=str(out),
                                 histories=str(path)))
    assert not out.exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "/nonexistent"}, "model folder not found"),
    ({"calib_method": "magic"}, "unknown --calib-method"),
    ({"calibration": "c.json", "histories": "d.npy"}, "contradict"),
    ({"exclude": ["("]}, "not a valid regex"),
    ({"onnx": "/nonexistent"}, "--onnx folder not found"),
])
def test_bad_options_are_refused(tiny_pipeline, tmp_path, kwargs, message):
    opts = {"model": str(tiny_pipeline / "model"), "onnx": str(tiny_pipeline / "onnx"),
            "out": str(tmp_path / "out"), **kwargs}
    with pytest.raises(UserError, match=message):
        quantize(QuantizeOptions(**opts))
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_force(tiny_pipeline):
    with pytest.raises(UserError, match="already exists"):
        quantize(QuantizeOptions(model=str(tiny_pipeline / "model"),
                                 onnx=str(tiny_pipeline / "onnx"), out=str(tiny_pipeline / "fp8")))


def test_transpose_swap_keeps_the_numbers():
    """Q -> Transpose -> DQ becomes Q -> DQ -> Transpose with identical outputs."""
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.05])
    zero = helper.make_tensor("z", TensorProto.FLOAT8E4M3FN, [], [0])
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], saturate=1),
             helper.make_node("Transpose", ["q"], ["qt"], perm=[1, 0]),
             helper.make_node("DequantizeLinear", ["qt", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [3, 5])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [5, 3])], [scale, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    swapped, count = swap_fp8_transpose(model)
    assert count == 1
    assert [n.op_type for n in swapped.graph.node] == ["QuantizeLinear", "DequantizeLinear",
                                                       "Transpose"]
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32) * 3
    import onnxruntime as ort

    from onerec_trt.graphs import session_options

    y = ort.InferenceSession(swapped.SerializeToString(), session_options(),
                             providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    expected = (torch.from_numpy(x / 0.05).to(torch.float8_e4m3fn).float() * 0.05).numpy().T
    np.testing.assert_array_equal(y, expected)


def test_loading_modelopt_prints_no_version_warning():
    """ModelOpt warns on import that transformers 5.24 is untested with its HF path (unused
    here): every quantize printed it. A fresh process, so the import really happens."""
    import subprocess
    import sys

    code = "from onerec_trt.quantize.ptq import _mtq; _mtq()"
    done = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_per_channel_weights_from_the_cli_are_recorded_and_reproducible(tiny_pipeline, tmp_path,
                                                                         cli):
    """quantize --weight-scales per-channel: every FP8 GEMM weight's DQ has a 1-D scale on the
    output features of the stored [in, out] weight (axis 1), activations stay per-tensor, the
    policy and calibration record it, and --policy / --calibration reproduce the graph."""
    out = tmp_path / "pc"
    result = cli("quantize", "--model", tiny_pipeline / "model", "--onnx", tiny_pipeline / "onnx",
                 "--out", out, "--calib-users", 32, "--calib-batch", 16,
                 "--weight-scales", "per-channel")
    assert result.returncode == 0, result.stderr
    report = QuantizeReport.load(out / "quantize_report.json")
    assert report.policy["weight_scales"] == "per-channel"
    assert report.format.startswith("FP8 E4M3, per-channel scales for weights")
    g = onnx.load(str(out / FP8_GRAPH)).graph
    inits = {t.name: t for t in g.initializer}
    weight_dqs = [n for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                  and inits[n.input[0]].data_type == TensorProto.FLOAT8E4M3FN]
    assert len({n.input[0] for n in weight_dqs}) == len(report.quantized_gemms)
    for dq in weight_dqs:
        weight, scale = inits[dq.input[0]], inits[dq.input[1]]
        assert [a.i for a in dq.attribute if a.name == "axis"] == [1]
        assert list(scale.dims) == [weight.dims[1]]
    from onerec_trt.lint import lint

    checked = lint(out / FP8_GRAPH)  # onnx-tensorrt's per-channel form, every DQ fused
    assert checked.ok and not checked.warnings, [str(p) for p in checked.problems]
    inputs = [n for n in g.node if n.op_type == "QuantizeLinear"]
    assert inputs and all(n.input[1] not in inits or not inits[n.input[1]].dims for n in inputs)
    saved = json.loads((out / "calibration.json").read_text())
    assert saved["weight_scales"] == "per-channel"
    assert all(isinstance(v, list) == k.endswith("weight_quantizer")
               for k, v in saved["amax"].items())
    again = quantize(QuantizeOptions(
        model=str(tiny_pipeline / "model"), onnx=str(tiny_pipeline / "onnx"),
        out=str(tmp_path / "again"), calibration=str(out / "calibration.json"),
        policy=str(out / "fp8_policy.json")))
    assert again.policy["weight_scales"] == "per-channel"
    hist = random_histories(16, 20, 40, seed=6).numpy()
    a = make_session(out / FP8_CPU_GRAPH).run(None, {"history": hist})
    b = make_session(tmp_path / "again" / FP8_CPU_GRAPH).run(None, {"history": hist})
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], atol=1e-6)

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from helpers import random_histories
from onerec_trt.export import ExportOptions, export
from onerec_trt.export.passes import render_bf16_on_cpu, score_path, score_path_dtypes
from onerec_trt.export.stage import check_graph
from onerec_trt.graphs import make_session
from onerec_trt.layout import BF16_GRAPH, CPU_GRAPH
from onerec_trt.model.checkpoint import load_model
from onerec_trt.model.generate import beam_search


def test_export_writes_checked_graphs_with_the_documented_interface(tiny_pipeline):
    folder = tiny_pipeline / "onnx"
    for name in (BF16_GRAPH, CPU_GRAPH):
        model = onnx.load(str(folder / name))
        onnx.checker.check_model(model, full_check=True)
        assert [i.name for i in model.graph.input] == ["history"]
        assert [o.name for o in model.graph.output] == ["items", "scores", "codes"]
        assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.INT64
    assert (folder / "export.json").is_file() and (folder / "manifest.json").is_file()


def test_score_path_is_fp32_in_every_graph(tiny_pipeline):
    for path in (tiny_pipeline / "onnx" / BF16_GRAPH, tiny_pipeline / "fp8" / "fp8.onnx"):
        dtypes = score_path_dtypes(onnx.load(str(path)))
        assert len(dtypes) > 10  # log-softmax outputs, adds, top-k values of every step
        assert set(dtypes.values()) == {"FLOAT"}, path
    bf16 = onnx.load(str(tiny_pipeline / "onnx" / BF16_GRAPH))
    assert any(t.data_type == TensorProto.BFLOAT16 for t in bf16.graph.initializer)


def test_cpu_rendering_matches_torch_bf16_generation(tiny_pipeline):
    bundle = load_model(tiny_pipeline / "model")
    hist = random_histories(64, bundle.config.max_history, bundle.config.num_items, seed=4)
    items, scores, codes = make_session(tiny_pipeline / "onnx" / CPU_GRAPH).run(
        None, {"history": hist.numpy()})
    ref = beam_search(bundle.model.to(torch.bfloat16), hist, 10, 10)
    assert (items == ref.items).all(axis=1).mean() >= 0.98
    np.testing.assert_allclose(scores, ref.scores, atol=2e-2)
    assert (bundle.semantic_ids.codes[items] == codes).all()


def _tiny_bf16_graph(score_dtype=TensorProto.FLOAT):
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) / 7, "w")
    w_bf16 = helper.make_tensor("w_bf16", TensorProto.BFLOAT16, [3, 4],
                                torch.from_numpy(numpy_helper.to_array(w)).to(torch.bfloat16)
                                .view(torch.int16).numpy().astype(np.uint16).tobytes(), raw=True)
    nodes = [
        helper.make_node("Cast", ["x"], ["xb"], to=TensorProto.BFLOAT16),
        helper.make_node("MatMul", ["xb", "w_bf16"], ["logits"]),
        helper.make_node("Cast", ["logits"], ["logits32"], to=score_dtype),
        helper.make_node("LogSoftmax", ["logits32"], ["logp"], axis=-1),
        helper.make_node("Add", ["logp", "prev"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("prev", score_dtype, [2, 4])],
        [helper.make_tensor_value_info("scores", score_dtype, [2, 4])], [w_bf16])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def test_bf16_rendering_rounds_like_torch_bf16():
    model = _tiny_bf16_graph()
    cpu = render_bf16_on_cpu(model)
    assert not any(t.data_type == TensorProto.BFLOAT16 for t in cpu.graph.initializer)
    x = np.array([[0.3, -1.7, 2.2], [1.1, 0.01, -0.5]], dtype=np.float32)
    prev = np.zeros((2, 4), dtype=np.float32)
    import onnxruntime as ort

    out = ort.InferenceSession(cpu.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x, "prev": prev})[0]
    w = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7
    logits = torch.from_numpy(x).bfloat16() @ w.bfloat16()
    ref = torch.log_softmax(logits.float(), -1).numpy()
    np.testing.assert_array_equal(out, ref)


def test_check_graph_rejects_a_bf16_score_path():
    model = _tiny_bf16_graph(score_dtype=TensorProto.BFLOAT16)
    assert "scores" in score_path(model)
    with pytest.raises(RuntimeError, match="not in fp32"):
        check_graph(model, "bad")


def test_export_refuses_bad_options(tmp_path, tiny_pipeline):
    from onerec_trt.errors import UserError

    with pytest.raises(UserError, match="between 1 and --beam"):
        export(ExportOptions(model=str(tiny_pipeline / "model"), out=str(tmp_path / "x"),
                             beam=5, topk=10))
    with pytest.raises(UserError, match="already exists"):
        export(ExportOptions(model=str(tiny_pipeline / "model"), out=str(tiny_pipeline / "onnx")))
    assert not (tmp_path / "x").exists()

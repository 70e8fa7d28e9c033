"""Issue 28: the lint's size rule (T1), its warnings for log ops TensorRT imports without a max
shift (T3) and for fp32 GEMMs in a bf16/FP8 graph (T5)."""

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from onerec_trt.lint import lint

F, BF16, I64 = TensorProto.FLOAT, TensorProto.BFLOAT16, TensorProto.INT64


def model(nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])


def found(report, rule, severity):
    return [p for p in report.problems if p.rule == rule and p.severity == severity]


def beam_like_graph(beam: int = 512, vocab: int = 8192) -> onnx.ModelProto:
    """scores [N, 1] -> Expand to [N, B, 1] by a shape computed from Shape(N) -> + logits row
    [V]: a [N, B, V] tensor whose batch only symbolic shape inference follows (Shape/Concat)."""
    n = helper.make_node
    nodes = [
        n("Shape", ["scores"], ["shape"]),
        n("Gather", ["shape", "zero"], ["users"], axis=0),
        n("Unsqueeze", ["users", "axis0"], ["s"]),
        n("Concat", ["s", "bv"], ["target"], axis=0),
        n("Unsqueeze", ["scores", "axis2"], ["lifted"]),
        n("Expand", ["lifted", "target"], ["wide"], name="/step/Expand"),
        n("Add", ["wide", "row"], ["cand"], name="/step/Add"),
        n("ReduceMax", ["cand", "axis2"], ["best"], keepdims=0, name="/step/ReduceMax"),
    ]
    inits = [numpy_helper.from_array(np.array([beam, vocab], np.int64), "bv"),
             numpy_helper.from_array(np.array([2], np.int64), "axis2"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axis0"),
             numpy_helper.from_array(np.zeros(vocab, np.float32), "row")]
    return model(nodes, [helper.make_tensor_value_info("scores", F, ["N", beam])],
                 [helper.make_tensor_value_info("best", F, ["N", beam])], inits)


def test_a_tensor_past_2_31_elements_at_the_max_batch_is_an_error_naming_the_batch_that_fits():
    """512 users x 512 beams x 8192 codes = 2^31 elements: one too many (no allocation: the
    shapes are inferred with the batch axis set)."""
    graph = beam_like_graph()
    errors = found(lint(graph, max_batch=512), "size", "error")
    names = {e.message.split("'")[1] for e in errors}
    assert names == {"wide", "cand"}, [str(e) for e in errors]
    assert all("largest batch that fits is 511" in e.message and "--max-batch 511" in e.message
               for e in errors)
    assert {e.node for e in errors} == {"/step/Expand", "/step/Add"}
    assert not found(lint(graph, max_batch=511), "size", "error")
    assert not found(lint(graph), "size", "error")  # no batch given: not checked


def test_the_size_rule_reads_the_qwen3_vocabulary_case():
    """Qwen3's 151,936 tokens: [N, B, V] passes 2^31 at N x B >= 14,134 (beam 512: 28 users)."""
    errors = found(lint(beam_like_graph(512, 151_936), max_batch=32), "size", "error")
    assert errors and all("largest batch that fits is 27" in e.message for e in errors)


def log_ops_graph():
    nodes = [helper.make_node("LogSoftmax", ["x"], ["y"], axis=-1, name="/step/LogSoftmax"),
             helper.make_node("ReduceLogSumExp", ["x", "axes"], ["z"], keepdims=1,
                              name="/logits/ReduceLogSumExp")]
    axes = numpy_helper.from_array(np.array([-1], np.int64), "axes")
    return model(nodes, [helper.make_tensor_value_info("x", F, ["N", 4])],
                 [helper.make_tensor_value_info("y", F, ["N", 4]),
                  helper.make_tensor_value_info("z", F, ["N", 1])], [axes])


def test_log_ops_tensorrt_imports_without_a_max_shift_are_warned():
    report = lint(log_ops_graph())
    warned = {(p.node, p.op) for p in found(report, "numerics", "warning")}
    assert warned == {("/step/LogSoftmax", "LogSoftmax"),
                      ("/logits/ReduceLogSumExp", "ReduceLogSumExp")}
    assert report.ok  # a warning: TensorRT builds it


def test_a_log_softmax_read_only_for_its_peak_is_not_warned():
    """export's stable form keeps only max(LogSoftmax(x)): the log of the largest probability
    (at least 1/V) stays finite when TensorRT computes it as Softmax -> Log."""
    n = helper.make_node
    axes = numpy_helper.from_array(np.array([-1], np.int64), "axes")
    nodes = [n("LogSoftmax", ["x"], ["logp"], axis=-1, name="/step/LogSoftmax"),
             n("ReduceMax", ["logp", "axes"], ["peak"], keepdims=1, name="/step/ReduceMax")]
    graph = model(nodes, [helper.make_tensor_value_info("x", F, ["N", 4])],
                  [helper.make_tensor_value_info("peak", F, ["N", 1])], [axes])
    assert not found(lint(graph), "numerics", "warning")


def gemm_graph(attention_dtype):
    """A bf16 projection, then an attention MatMul whose inputs are ``attention_dtype``."""
    n = helper.make_node
    nodes = [n("MatMul", ["x", "w"], ["h"], name="/proj/MatMul"),
             n("Cast", ["h"], ["q"], to=attention_dtype),
             n("Cast", ["k16"], ["k"], to=attention_dtype),
             n("MatMul", ["q", "k"], ["s"], name="/attn/MatMul")]
    w = helper.make_tensor("w", BF16, [4, 4], np.zeros(16, np.uint16).tobytes(), raw=True)
    return model(nodes, [helper.make_tensor_value_info("x", BF16, ["N", 4]),
                         helper.make_tensor_value_info("k16", BF16, [4, 3])],
                 [helper.make_tensor_value_info("s", attention_dtype, ["N", 3])], [w])


def test_an_fp32_matmul_in_a_bf16_graph_is_warned():
    warned = found(lint(gemm_graph(F)), "precision", "warning")
    assert [(p.node, p.op) for p in warned] == [("/attn/MatMul", "MatMul")]
    assert not found(lint(gemm_graph(BF16)), "precision", "warning")


def test_an_all_fp32_graph_is_not_warned():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    w = numpy_helper.from_array(np.zeros((4, 4), np.float32), "w")
    graph = model(nodes, [helper.make_tensor_value_info("x", F, ["N", 4])],
                  [helper.make_tensor_value_info("y", F, ["N", 4])], [w])
    assert not lint(graph).warnings


def test_imported_decoder_only_model_keeps_rope_in_the_compute_dtype(tmp_path):
    """T5: a Qwen3 checkpoint loaded in bf16 (as quantize loads it) computes q/k, the prompt's
    K cache and QK^T in bf16, as transformers does: the fp32 RoPE tables no longer promote."""
    from hf_checkpoints import tiny_qwen3
    from onerec_trt.model.checkpoint import load_model
    from onerec_trt.model.hf_import.stage import ImportOptions, import_checkpoint

    checkpoint, catalogue = tiny_qwen3(tmp_path / "ck")
    import_checkpoint(ImportOptions(out=str(tmp_path / "m"), hf=str(checkpoint),
                                    catalogue=str(catalogue), max_history=6, histories=8))
    model = load_model(tmp_path / "m", torch.bfloat16).model
    history = torch.from_numpy(np.load(tmp_path / "m" / "histories.npy"))
    with torch.no_grad():
        ctx = model.encode_context(history)
        model.decode_step(ctx, None, 0, None, 4)
    assert {k.dtype for k in ctx.keys} == {torch.bfloat16}
    assert model.cos.dtype == torch.float32  # the table stays exact; each use casts it


def test_build_stops_on_a_tensor_too_large_at_its_max_batch(tmp_path, caplog):
    """The build lints at its own --max-batch (nothing else runs: no TensorRT needed)."""
    from onerec_trt.builder import BuildOptions, build

    path = tmp_path / "wide.onnx"
    onnx.save(beam_like_graph(), path)
    caplog.set_level("INFO", logger="onerec_trt")
    result = build(BuildOptions(onnx=[str(path)], out=str(tmp_path / "engines"), max_batch=512,
                                print_commands=True))
    assert not result.ok
    lines = caplog.messages
    assert any("[size]" in line and "--max-batch 511" in line for line in lines), lines
    ok = build(BuildOptions(onnx=[str(path)], out=str(tmp_path / "engines"), max_batch=511,
                            print_commands=True))
    assert ok.ok


def test_lint_cli_checks_sizes_at_max_batch(tmp_path, capsys):
    from onerec_trt.cli import main

    path = tmp_path / "wide.onnx"
    onnx.save(beam_like_graph(), path)
    assert main(["lint", str(path)]) == 0
    assert main(["lint", str(path), "--max-batch", "512"]) == 1
    assert "--max-batch 511" in capsys.readouterr().out
    assert main(["lint", str(path), "--max-batch", "0"]) == 2


def test_our_graphs_are_sized_at_the_default_max_batch(tiny_pipeline):
    """The size rule follows every tensor of the real exported graphs (the unrolled beam steps
    included), so no 'not checked' warning."""
    from onerec_trt.lint.sizes import skeleton, volumes

    for name in ("onnx/reference.bf16.onnx", "fp8/fp8.onnx"):
        report = lint(tiny_pipeline / name, max_batch=256)
        assert report.ok and not report.warnings, report.lines()
        graph = onnx.load(tiny_pipeline / name)
        produced = {o for node in graph.graph.node for o in node.output if o}
        assert produced <= set(volumes(skeleton(graph), 256))

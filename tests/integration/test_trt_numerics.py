"""Issue 28, T1/T3: the beam scores stay finite in TensorRT and the rest-of-vocabulary logit is
computed in chunks. TensorRT is not here: ``tensorrt_imports`` rewrites a graph the way
onnx-tensorrt imports LogSoftmax (Softmax -> Log) and ReduceLogSumExp (Exp -> ReduceLogSum, no
max shift), and ONNX Runtime runs the result."""

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper
from torch import nn

from helpers import random_histories, tiny_model
from onerec_trt.model.generate import Generator
from onerec_trt.model.hf.attention import LevelLogits
from onerec_trt.model.logexp import log_softmax

UNSTABLE = {"LogSoftmax", "ReduceLogSumExp"}


def unstable_ops(graph: onnx.ModelProto) -> set[str]:
    """The log ops TensorRT would compute naively: a LogSoftmax read only by ReduceMax (the
    log of the largest probability, at least 1/V) is the stable form's own part."""
    readers: dict[str, set[str]] = {}
    for node in graph.graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    return {n.op_type for n in graph.graph.node if n.op_type in UNSTABLE
            and readers.get(n.output[0], set()) != {"ReduceMax"}}


def tensorrt_imports(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph as onnx-tensorrt's importers build it (onnxOpImporters.cpp)."""
    nodes = []
    for node in model.graph.node:
        if node.op_type == "LogSoftmax":
            mid = node.output[0] + "_softmax"
            nodes += [helper.make_node("Softmax", [node.input[0]], [mid],
                                       axis=helper.get_attribute_value(node.attribute[0])
                                       if node.attribute else -1),
                      helper.make_node("Log", [mid], list(node.output))]
        elif node.op_type == "ReduceLogSumExp":
            mid = node.output[0] + "_exp"
            nodes += [helper.make_node("Exp", [node.input[0]], [mid]),
                      helper.make_node("ReduceLogSum", [mid, *node.input[1:]], list(node.output),
                                       keepdims=1 if not node.attribute else
                                       helper.get_attribute_value(node.attribute[0]))]
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def to_onnx(module: nn.Module, example: torch.Tensor, names=("x",)) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buffer, input_names=list(names), opset_version=19,
                          dynamo=False, dynamic_axes={names[0]: {0: "N"}})
    return onnx.load_from_string(buffer.getvalue())


def run(model: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


class ImportedStepScores(nn.Module):
    """What an imported model's beam step scores: the log-softmax of the level logits (codes
    plus the rest of the vocabulary's logsumexp)."""

    def __init__(self, vocab: int, codes: list[int]):
        super().__init__()
        self.logits = LevelLogits(vocab, [codes])

    def forward(self, x):
        return log_softmax(self.logits(x, 0))


def large_logits(vocab: int) -> np.ndarray:
    """Logits as a confident LM gives them: one far above 88.7 (exp overflows fp32), a spread
    of 200 (softmax underflows to 0 for the tail)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-80, 0, size=(2, 3, vocab)).astype(np.float32)
    x[..., 5] = 120.0
    return x


def test_the_beam_scores_stay_finite_where_tensorrt_imports_log_ops_naively():
    vocab, codes = 40, [1, 3, 5, 7, 9]
    module = ImportedStepScores(vocab, codes).eval()
    graph = to_onnx(module, torch.zeros(2, 3, vocab))
    assert not unstable_ops(graph)
    x = large_logits(vocab)
    want = module(torch.from_numpy(x).double()).numpy()  # float64: the true values
    (on_ort,) = run(graph, {"x": x})
    (on_trt,) = run(tensorrt_imports(graph), {"x": x})
    assert np.isfinite(want).all() and np.isfinite(on_trt).all()
    np.testing.assert_allclose(on_trt, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(on_ort, want, rtol=1e-5, atol=1e-4)


def test_torch_own_log_ops_would_die_in_tensorrt():
    """The emulation is real: the graph torch writes for log_softmax/logsumexp (what export
    wrote before) gives inf and -inf there, where ONNX Runtime stays finite."""

    class Naive(nn.Module):
        def forward(self, x):
            return torch.log_softmax(x, -1), torch.logsumexp(x, -1)

    vocab = 40
    graph = to_onnx(Naive(), torch.zeros(2, 3, vocab))
    assert unstable_ops(graph) == UNSTABLE
    x = large_logits(vocab)
    assert all(np.isfinite(out).all() for out in run(graph, {"x": x}))
    logp, lse = run(tensorrt_imports(graph), {"x": x})
    assert np.isneginf(logp).any() and np.isposinf(lse).all()


def test_the_exported_generation_graph_has_no_unstable_log_ops_and_matches_torch():
    model = tiny_model(num_items=40, codebook=4)
    for step in ("csr", "dense"):
        generator = Generator(model, beam=8, topk=5, step=step).eval()
        hist = random_histories(6, 20, 40, seed=2)
        graph = to_onnx(generator, hist, names=("history",))
        assert not unstable_ops(graph), step
        items, scores, _ = run(graph, {"history": hist.numpy()})
        with torch.no_grad():
            want_items, want_scores, _ = generator(hist)
        np.testing.assert_array_equal(items, want_items.numpy())
        np.testing.assert_allclose(scores, want_scores.numpy(), rtol=1e-5, atol=1e-5)


def test_a_users_scores_do_not_depend_on_the_batch_it_is_served_in():
    """Served by Triton, a request shares its batch with others: ONNX Runtime must give every
    row the same bits alone and in any batch (its element-wise Log and short ReduceSum round by
    a value's place in the buffer; the stable forms keep them inside LogSoftmax)."""
    model = tiny_model(num_items=40, codebook=4)
    generator = Generator(model, beam=10, topk=10).eval()
    hist = random_histories(96, 20, 40, seed=11).numpy()
    graph = to_onnx(generator, torch.from_numpy(hist[:2]), names=("history",))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    alone = [session.run(None, {"history": hist[i:i + 1]}) for i in range(len(hist))]
    rng = np.random.default_rng(0)
    for _ in range(40):
        rows = rng.integers(0, len(hist), int(rng.integers(2, 65)))
        batch = session.run(None, {"history": hist[rows]})
        for j, row in enumerate(rows):
            for got, want in zip(batch, alone[row], strict=True):
                np.testing.assert_array_equal(got[j], want[0])


@pytest.mark.parametrize("chunk", [1, 7, 16, 39])
def test_chunked_rest_of_vocabulary_equals_the_unchunked_logsumexp(chunk):
    vocab, codes = 40, [0, 4, 11, 16, 17, 38]
    x = torch.from_numpy(np.random.default_rng(1).normal(0, 30, (3, 4, vocab)).astype(np.float32))
    whole = LevelLogits(vocab, [codes], chunk=vocab)(x, 0)
    chunked = LevelLogits(vocab, [codes], chunk=chunk)(x, 0)
    rest = np.delete(x.double().numpy(), codes, axis=-1)
    exact = np.log(np.exp(rest - rest.max(-1, keepdims=True)).sum(-1)) + rest.max(-1)
    torch.testing.assert_close(chunked, whole, rtol=2e-6, atol=1e-5)
    np.testing.assert_allclose(chunked[..., -1].double().numpy(), exact, rtol=1e-6)
    np.testing.assert_array_equal(chunked[..., :-1].numpy(), x[..., codes].numpy())


def test_the_exported_chunked_logit_has_no_vocabulary_sized_float_copy():
    """The rest-of-vocabulary logsumexp reads [N, B, chunk] slices: no fp32 tensor spans the
    vocabulary (only the logits themselves do)."""
    vocab, chunk = 40, 16
    module = LevelLogits(vocab, [[1, 2, 3]], chunk=chunk).eval()

    class Rest(nn.Module):
        def __init__(self):
            super().__init__()
            self.logits = module

        def forward(self, x):
            return self.logits(x.to(torch.bfloat16), 0)

    graph = onnx.shape_inference.infer_shapes(to_onnx(Rest(), torch.zeros(2, 3, vocab)))
    widths = {vi.name: vi.type.tensor_type.shape.dim[-1].dim_value
              for vi in graph.graph.value_info
              if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
              and vi.type.tensor_type.shape.dim}
    assert widths and max(widths.values()) <= chunk, widths

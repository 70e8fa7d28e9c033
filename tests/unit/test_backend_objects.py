"""The backend objects (``onerec_trt.backends``) made directly, and the one parser of backend
strings (``commands/backends.py``): no shared run, a hand-made graph."""

import pickle

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onerec_trt.backends import HfOracle, OrtBackend, TorchBackend
from onerec_trt.commands.backends import backend_from_spec
from onerec_trt.errors import UserError


def _echo_graph(path, length: int = 5):
    """history [N, S] -> items (the history), scores (as float): a graph ONNX Runtime runs."""
    history = helper.make_tensor_value_info("history", TensorProto.INT64, ["N", length])
    items = helper.make_tensor_value_info("items", TensorProto.INT64, ["N", length])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", length])
    graph = helper.make_graph([helper.make_node("Identity", ["history"], ["items"]),
                               helper.make_node("Cast", ["history"], ["scores"],
                                                to=TensorProto.FLOAT)],
                              "echo", [history], [items, scores])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_an_ort_backend_runs_a_graph_and_pickles_unopened(tmp_path):
    graph = OrtBackend(_echo_graph(tmp_path / "echo.onnx"), threads=1, precision="fp32")
    assert (graph.kind, graph.precision, graph.name) == ("ort", "fp32", str(tmp_path / "echo.onnx"))
    assert graph.inputs == ["history"] and graph.outputs == ["items", "scores"]
    assert graph.export is None and not graph.takes_request
    history = np.arange(10, dtype=np.int64).reshape(2, 5)
    with graph:
        out = graph.run(history)
        assert graph.info()["threads"] == 1
    np.testing.assert_array_equal(out["items"], history)
    np.testing.assert_array_equal(out["scores"], history.astype(np.float32))
    assert graph.runner("candidate").name == "candidate:echo.onnx"
    graph.open()
    copy = pickle.loads(pickle.dumps(graph))  # what bench sends its worker
    graph.close()
    assert copy._runner is None
    np.testing.assert_array_equal(copy.run(history)["items"], history)
    copy.close()


def test_torch_and_oracle_backends_take_the_request_from_the_caller():
    loop = TorchBackend("default", "bf16")
    assert (loop.kind, loop.precision, loop.name, loop.request) == ("torch", "bf16",
                                                                   "torch:bf16", (None, None))
    with pytest.raises(UserError, match="needs a beam width and top-K"):
        loop.runner()
    loop.for_request(20, 10)
    assert loop.request == (20, 10)
    assert TorchBackend("default", beam=4, topk=2).request == (4, 2)  # its own stays
    with pytest.raises(UserError, match="fp32 or bf16"):
        TorchBackend("default", "fp16")
    oracle = HfOracle("default")
    assert (oracle.kind, oracle.name, oracle.takes_request) == ("hf", "hf", True)


@pytest.mark.parametrize("spec, kind, precision", [
    ("torch", "torch", "fp32"), ("torch:fp32", "torch", "fp32"), ("torch:bf16", "torch", "bf16"),
    ("hf", "hf", "fp32")])
def test_backend_from_spec_makes_the_object_the_string_names(spec, kind, precision):
    made = backend_from_spec(spec, "candidate", "default")
    assert (made.kind, made.precision, made.name) == (kind, precision, spec)


def test_backend_from_spec_reads_files_by_their_suffix(tmp_path):
    graph = backend_from_spec(str(_echo_graph(tmp_path / "g.onnx")), "reference")
    assert isinstance(graph, OrtBackend) and graph.path == tmp_path / "g.onnx"
    with pytest.raises(UserError, match="reference graph not found"):
        backend_from_spec(str(tmp_path / "missing.onnx"), "reference")
    with pytest.raises(UserError, match="candidate engine not found"):
        backend_from_spec(str(tmp_path / "missing.plan"), "candidate")


@pytest.mark.parametrize("spec", ["graph.txt", "ort-fp8", "torch:fp16", ""])
def test_a_bad_backend_string_is_one_line(spec):
    with pytest.raises(UserError) as info:
        backend_from_spec(spec, "candidate")
    message = str(info.value).splitlines()
    assert message[0] == f"--candidate {spec!r} is not a graph, an engine, the torch loop or " \
                         "the hf oracle"
    assert "expected FILE.onnx, FILE.plan, torch, torch:fp32, torch:bf16 or hf" in message[1]


def test_verify_without_backend_objects_says_how_to_make_them():
    from onerec_trt.verify import VerifyOptions, verify

    with pytest.raises(UserError, match="verify_backends"):
        verify(VerifyOptions())

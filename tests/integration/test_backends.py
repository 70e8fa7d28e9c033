"""Each backend kind made directly in Python and run on the tiny pipeline's model and graphs,
and verify and bench given backend objects instead of strings."""

import numpy as np
import pytest

from onerec_trt.backends import HfOracle, OrtBackend, TorchBackend, TrtBackend
from onerec_trt.errors import UserError
from onerec_trt.metrics import overlap


def _histories(root, users: int = 12) -> np.ndarray:
    from onerec_trt.data.samplers import held_out
    from onerec_trt.model.checkpoint import load_model

    bundle = load_model(root / "model")
    histories, _ = held_out(bundle.load_data().split(), "test", users, bundle.config.max_history)
    return histories


def test_the_torch_loop_and_the_fp32_graph_give_the_same_items(tiny_pipeline):
    root = tiny_pipeline
    histories = _histories(root)
    graph = OrtBackend(root / "onnx" / "reference.fp32.onnx", threads=1)
    assert graph.export is not None and graph.request == (10, 10)
    loop = TorchBackend(str(root / "model"), "fp32")
    loop.for_request(*graph.request)  # what verify does with the reference's export
    with graph, loop:
        ours, theirs = graph.run(histories), loop.run(histories)
        assert loop.info()["device"] == "cpu"
    assert ours["items"].shape == theirs["items"].shape == (len(histories), 10)
    assert overlap(ours["items"], theirs["items"], 10).mean() >= 0.95
    np.testing.assert_allclose(ours["scores"], theirs["scores"], atol=1e-3)


def test_the_oracle_needs_an_imported_model(tiny_pipeline):
    oracle = HfOracle(str(tiny_pipeline / "model"), beam=10, topk=10)
    with pytest.raises(UserError, match="needs a model imported from a transformers"):
        oracle.open()


def test_a_tensorrt_backend_needs_tensorrt(tiny_pipeline, tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (see docs/tensorrt.md)")
    with pytest.raises(UserError, match="engine not found"):
        TrtBackend(tmp_path / "missing.plan")


def test_verify_takes_backend_objects(tiny_pipeline, tmp_path):
    from onerec_trt.verify import VerifyOptions, verify

    root = tiny_pipeline
    opts = VerifyOptions(model=str(root / "model"), users=20, batch=20, bootstrap=50,
                         out=str(tmp_path / "v"))
    report = verify(opts, OrtBackend(root / "onnx" / "reference.cpu.onnx"),
                    TorchBackend(str(root / "model"), "bf16"))
    assert report.backends["candidate"]["spec"] == "torch:bf16"
    assert report.backends["candidate"]["runner"] == "candidate:torch:bf16"
    assert report.options["candidate"] == "torch:bf16"  # the options name what ran
    assert report.users == 20 and report.gates["finite_scores"]["pass"]


def test_bench_times_the_backend_objects_it_is_given(tiny_pipeline, tmp_path):
    from onerec_trt.bench import BenchOptions, bench

    root = tiny_pipeline
    graph = OrtBackend(root / "onnx" / "reference.cpu.onnx", precision="bf16")
    report = bench(BenchOptions(model=str(root / "model"), out=str(tmp_path / "b"),
                                batches=[1], reps=1, warmup=0, progress=False),
                   backends={"ort-bf16": graph, "mine": TorchBackend(str(root / "model"))})
    assert set(report.backends) == {"ort-bf16", "mine"} and not report.skipped
    assert report.backends["ort-bf16"]["path"] == str(root / "onnx" / "reference.cpu.onnx")
    assert report.request["beam"] == 10 and report.options["backends"] == ["ort-bf16", "mine"]
    assert report.agreement["pairs"]["mine"]["ort-bf16"]["overlap"] >= 0.9

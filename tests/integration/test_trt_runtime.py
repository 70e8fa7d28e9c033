"""The TensorRT runtime and its use by the verify stage. Everything that needs no TensorRT runs
everywhere (metadata, model hash, plan/metadata agreement, the one-line error); building and
running real engines needs TensorRT and a GPU and is skipped, with the reason, without them."""

import json
import struct

import numpy as np
import pytest

from helpers import HAS_TRT
from onerec_trt.backends.metadata import EngineMetadata, GpuInfo
from onerec_trt.builder.jobs import Batches, engine_job
from onerec_trt.builder.stage import engine_metadata
from onerec_trt.builder.trt_builder import BuiltEngine
from onerec_trt.errors import UserError
from onerec_trt.metrics import overlap


@pytest.fixture(scope="module")
def gpu():
    """Skips the test without a CUDA GPU; probed when a TensorRT test runs, not at import."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA GPU")


def needs_tensorrt(test):
    """Marked ``tensorrt``; skipped (before any fixture runs) without TensorRT, and by the
    ``gpu`` fixture (first in the test's arguments) without a GPU."""
    test = pytest.mark.skipif(not HAS_TRT,
                              reason="TensorRT is not installed (see docs/tensorrt.md)")(test)
    return pytest.mark.tensorrt(test)


@pytest.fixture
def fake_pair(tiny_pipeline, tmp_path):
    """A plan/metadata pair for the fp8 graph whose plan bytes are a synthetic header (what
    can be checked without TensorRT is checked before the bytes reach it)."""
    job = engine_job(tiny_pipeline / "fp8" / "fp8.onnx", Batches())
    plan = struct.pack("<II", 0x74727466, 0) + bytes(16) + bytes((10, 15, 1, 29)) + b"x" * 64
    built = BuiltEngine(plan, b"", "10.15.1.29", {"history": ([-1, 20], "INT64")},
                        {"items": ([-1, 10], "INT64"), "scores": ([-1, 10], "FLOAT"),
                         "codes": ([-1, 10, 3], "INT64")}, 1.0, [])
    meta = engine_metadata(job, built, GpuInfo("NVIDIA H200", (9, 0)), {})
    plan_path, _ = EngineMetadata.write(tmp_path, job.name, plan, meta)
    return plan_path, meta


def test_engines_import_without_tensorrt():
    import onerec_trt.backends.tensorrt as runtime
    import onerec_trt.backends.trt_backend as backend
    import onerec_trt.builder.trt_builder as builder

    assert backend.TrtBackend and runtime.load and builder.build_engine


def test_a_plan_of_another_model_is_refused(fake_pair):
    from onerec_trt.commands.backends import backend_from_spec

    plan, meta = fake_pair
    with pytest.raises(UserError, match=r"candidate .*fp8\.plan was made from another model "
                                        r"\(hash " + meta["model_sha256"][:12]):
        backend_from_spec(str(plan), "candidate", "unused", "0" * 64)


def test_a_plan_that_does_not_match_its_metadata_is_refused(fake_pair):
    from onerec_trt.backends import TrtBackend

    plan, meta = fake_pair
    plan.write_bytes(plan.read_bytes() + b"tampered")
    with pytest.raises(UserError, match="does not match its metadata"):
        TrtBackend(plan, model_sha=meta["model_sha256"], role="reference")
    plan.with_suffix(".json").unlink()
    with pytest.raises(UserError, match="no engine metadata fp8.json"):
        TrtBackend(plan, model_sha=meta["model_sha256"], role="reference")
    with pytest.raises(UserError, match="engine not found"):
        TrtBackend(plan.with_name("other.plan"), role="reference")


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_the_runner_without_tensorrt_is_one_clear_line(fake_pair):
    from onerec_trt.backends import TrtBackend
    from onerec_trt.backends.tensorrt import load

    plan, meta = fake_pair
    for call in (lambda: TrtBackend(plan, model_sha=meta["model_sha256"]),
                 lambda: load(plan)):
        with pytest.raises(UserError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and "TensorRT is not installed" in message
        assert "pip install" in message


def test_runner_input_metadata_comes_from_the_json(fake_pair):
    pytest.importorskip("polygraphy")
    from onerec_trt.backends.tensorrt import input_metadata

    plan, _ = fake_pair
    inputs = input_metadata(EngineMetadata.read(plan))
    assert list(inputs) == ["history"]
    assert tuple(inputs["history"].shape) == (-1, 20)
    assert str(inputs["history"].dtype).endswith("int64")


# ---- with TensorRT and a GPU -----------------------------------------------------------

@pytest.fixture(scope="module")
def built_engines(tiny_pipeline, tmp_path_factory):
    from onerec_trt.builder import BuildOptions, build

    out = tmp_path_factory.mktemp("trt") / "engines"
    result = build(BuildOptions(
        onnx=[str(tiny_pipeline / "onnx" / "reference.bf16.onnx"),
              str(tiny_pipeline / "fp8" / "fp8.onnx")],
        out=str(out), min_batch=1, opt_batch=8, max_batch=32, opt_level=0))
    assert result.ok
    return out


@needs_tensorrt
@pytest.mark.parametrize("name, cpu_graph", [("reference.bf16", "onnx/reference.cpu.onnx"),
                                             ("fp8", "fp8/fp8.cpu.onnx")])
def test_engines_agree_with_onnx_runtime(gpu, built_engines, tiny_pipeline, name, cpu_graph):
    import tensorrt as trt

    from onerec_trt.backends.metadata import parse_version, plan_version
    from onerec_trt.backends.tensorrt import load
    from onerec_trt.graphs import make_session

    meta = json.loads((built_engines / f"{name}.json").read_text())
    data = (built_engines / f"{name}.plan").read_bytes()
    assert meta["tensorrt"]["version"] == trt.__version__
    header = plan_version(data)  # TENSORRT.md: bytes 24-27 of the header
    assert header is None or header[:3] == parse_version(trt.__version__)[:3]
    rng = np.random.default_rng(0)
    s = meta["profile"]["history"]["max"][1]
    hist = rng.integers(1, 40, size=(16, s)).astype(np.int64)
    engine = load(built_engines / f"{name}.plan", model_sha=meta["model_sha256"])
    got = engine.infer_numpy({"history": hist})
    items, scores, _ = make_session(tiny_pipeline / cpu_graph).run(None, {"history": hist})
    assert got["items"].shape == items.shape and got["scores"].dtype == np.float32
    assert overlap(got["items"], items, items.shape[1]).mean() >= 0.9
    finite = np.isfinite(scores)
    np.testing.assert_allclose(got["scores"][finite], scores[finite], atol=0.5)


@needs_tensorrt
def test_cuda_graphs_replay_the_same_results(gpu, built_engines):
    from onerec_trt.backends.tensorrt import load

    plan = built_engines / "fp8.plan"
    plain, graphed = load(plan), load(plan, cuda_graphs=True, max_cached_shapes=2)
    rng = np.random.default_rng(1)
    s = plain.meta.inputs["history"].shape[1]
    # a second visit to a batch size replays its graph, after another shape ran on the context;
    # 7 evicts 16 (two shapes kept), so the last 16 captures again
    for batch in (3, 16, 3, 7, 3, 16):
        hist = rng.integers(1, 40, size=(batch, s)).astype(np.int64)
        want, got = plain.infer_numpy({"history": hist}), graphed.infer_numpy({"history": hist})
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
    assert len(graphed._buffers) == 2 and all(b.graph is not None
                                              for b in graphed._buffers.values())


# ---- CUDA-graph shapes, the plugins' PTX target, Triton batch buckets (review D7, D1, D5) -------

def test_the_shape_cache_is_a_small_lru():
    from onerec_trt.backends.tensorrt import MAX_CACHED_SHAPES, ShapeCache

    assert 1 <= MAX_CACHED_SHAPES <= 8  # not one graph per batch size 1-256 forever
    cache = ShapeCache(3)
    for batch in (1, 2, 3):
        assert cache.put(batch, f"buffers{batch}") == []
    assert cache.get(1) == "buffers1"  # 1 is now the most recently used
    assert cache.put(4, "buffers4") == ["buffers2"]  # the least recently used goes
    assert cache.keys() == [3, 1, 4] and len(cache) == 3
    assert cache.get(2) is None
    assert cache.put(5, "buffers5") == ["buffers3"] and cache.values() == [
        "buffers1", "buffers4", "buffers5"]
    with pytest.raises(UserError, match="at least one shape"):
        ShapeCache(0)


def test_replay_restores_the_context_shapes_first():
    """A graph replays against the one execution context every cached shape shares: infer sets
    that shape's inputs and addresses before ``replay`` (read from the source: running it needs
    TensorRT and a GPU, see test_cuda_graphs_replay_the_same_results)."""
    import ast
    import inspect
    import textwrap

    from onerec_trt.backends.tensorrt import Engine

    tree = ast.parse(textwrap.dedent(inspect.getsource(Engine.infer)))
    calls = [n.func.attr for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    assert "replay" in calls and "_bind" in calls[:calls.index("replay")]
    bind = ast.parse(textwrap.dedent(inspect.getsource(Engine._bind)))
    names = {n.func.attr for n in ast.walk(bind)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert {"set_input_shape", "set_tensor_address"} <= names


def test_plugin_ptx_for_another_compute_capability_is_refused(fake_pair):
    plan_path, meta = fake_pair
    meta = dict(meta, plugins=[{"name": "TrieBeamExpand", "domain": "onerec",
                                "namespace": "onerec", "version": "1", "nodes": 3,
                                "ptx_arch": 90, "ptx_target": "sm_90a"}])
    plan_path.with_suffix(".json").write_text(json.dumps(meta))
    loaded = EngineMetadata.read(plan_path)
    assert loaded.plugin_archs == {"TrieBeamExpand": 90}
    assert loaded.check_runtime("10.15.1.29", GpuInfo("NVIDIA H200", (9, 0)), "x.plan") == []
    meta["plugins"][0]["ptx_arch"] = 89  # e.g. a registration compiled for another GPU
    plan_path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=r"plugin TrieBeamExpand's kernel was compiled for "
                                        r"compute capability 8\.9, this GPU is NVIDIA H200 "
                                        r"\(9\.0\)"):
        EngineMetadata.read(plan_path).check_runtime("10.15.1.29",
                                                     GpuInfo("NVIDIA H200", (9, 0)), "x.plan")


def test_gpu_repository_batch_buckets():
    from onerec_trt.triton import config as cfg
    from onerec_trt.triton.contract import Contract, TensorSpec

    assert cfg.bucket_sizes(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert cfg.bucket_sizes(48) == [1, 2, 4, 8, 16, 32, 48] and cfg.bucket_sizes(1) == [1]
    with pytest.raises(ValueError, match="end at max_batch_size 64"):
        cfg.Batching(64, [], 100, [1, 8, 32])
    contract = Contract(inputs=(TensorSpec("history", "int64", (20,)),),
                        outputs=(TensorSpec("items", "int64", (10,)),), num_items=100,
                        max_history=20, topk=10, levels=3)
    plain = cfg.Batching(64, [32], 100)
    assert "optimization" not in cfg.tensorrt_model("m", contract, plain, 1)  # default unchanged
    batching = cfg.Batching(64, [32], 100, [1, 4, 16, 64])
    assert cfg.python_model("m", contract, batching, 1, {}) == \
        cfg.python_model("m", contract, plain, 1, {})  # CPU repositories are unchanged
    config = cfg.tensorrt_model("m", contract, batching, 1)
    assert config["dynamic_batching"]["preferred_batch_size"] == [1, 4, 16, 64]
    specs = config["optimization"]["cuda"]["graph_spec"]
    assert [(s["batch_size"], s.get("graph_lower_bound", {}).get("batch_size")) for s in specs] \
        == [(1, None), (4, 2), (16, 5), (64, 17)]  # every batch 1-64 has exactly one graph
    try:
        parsed = cfg.parse(cfg.render(config))  # Triton's own ModelConfig proto
    except ImportError:
        pytest.skip("tritonclient is not installed")
    assert parsed.optimization.cuda.graphs
    assert [g.batch_size for g in parsed.optimization.cuda.graph_spec] == [1, 4, 16, 64]
    assert parsed.optimization.cuda.graph_spec[3].graph_lower_bound.batch_size == 17
    assert list(parsed.optimization.cuda.graph_spec[3].input["history"].dim) == [20]
    assert list(parsed.dynamic_batching.preferred_batch_size) == [1, 4, 16, 64]


PLUGIN = {"name": "TrieBeamExpand", "domain": "onerec", "namespace": "onerec", "version": "1",
          "nodes": 3}


def test_engine_metadata_never_chooses_plugin_code():
    """Issue 28 item 7: only this project's registration, or what the user names at load."""
    from onerec_trt.backends.tensorrt_lib import plugins_to_load
    from onerec_trt.builder import DEFAULT_PLUGIN_MODULE

    ours = {"plugin_modules": [DEFAULT_PLUGIN_MODULE], "plugin_libraries": []}
    assert plugins_to_load(ours).modules == [DEFAULT_PLUGIN_MODULE]
    assert plugins_to_load(None).modules == [] and plugins_to_load({}).libraries == []
    for hostile in ({"plugin_modules": ["os:abort"]},
                    {"plugin_modules": ["onerec_trt.plugins.tensorrt_plugins:os"]},
                    {"plugin_libraries": ["/tmp/evil.so"]}):
        with pytest.raises(UserError, match="metadata asks to load plugin code you did not "
                                            "name"):
            plugins_to_load(hostile)
    with pytest.raises(UserError, match="not a list of names"):
        plugins_to_load({"plugin_modules": "os:abort"})
    named = plugins_to_load({"plugin_modules": ["mine.plugins:register"],
                             "plugin_libraries": ["lib/./mine.so"]},
                            ["mine.plugins:register"], ["lib/mine.so"])
    assert named.modules == ["mine.plugins:register"] and named.libraries == ["lib/mine.so"]


def test_a_hostile_engine_metadata_is_refused_before_anything_is_imported(
        fake_pair, tmp_path, monkeypatch):
    from onerec_trt.backends import TrtBackend
    from onerec_trt.backends.tensorrt import load

    marker = tmp_path / "imported.txt"
    (tmp_path / "sender_plugins.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plan, meta = fake_pair
    meta = dict(meta, plugins=[PLUGIN], build={"plugin_modules": ["sender_plugins"],
                                               "plugin_libraries": [str(tmp_path / "x.so")]})
    plan.with_suffix(".json").write_text(json.dumps(meta))
    for call in (lambda: TrtBackend(plan, model_sha=meta["model_sha256"]),
                 lambda: load(plan)):
        with pytest.raises(UserError, match=r"did not name: sender_plugins, .*x\.so"):
            call()
    assert not marker.exists()


def test_known_bad_and_unpinned_tensorrt_versions_are_warned_about():
    """T2: the extra pins TensorRT 10 (tensorrt>=10.9 resolves to 11.x, CUDA 13); 11.1-11.2.x
    leak a CUDA module per shape change with AOT plugins (NVIDIA/TensorRT#4849)."""
    import tomllib
    from pathlib import Path

    from onerec_trt.backends import tensorrt_lib

    extra = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())[
        "project"]["optional-dependencies"]["tensorrt"]
    assert "tensorrt-cu12>=10.9,<11" in extra and not any(e.startswith("tensorrt>") for e in extra)
    for leaky in ("11.1.0.5", "11.2.1.3"):
        assert any("#4849" in n for n in tensorrt_lib.check_version(leaky))
        assert any("#4849" in n for n in tensorrt_lib.version_notes(leaky))
    assert tensorrt_lib.check_version("11.3.0") == [] == tensorrt_lib.check_version("10.15.1")
    assert any("newer major" in n for n in tensorrt_lib.version_notes("11.4.0.106"))

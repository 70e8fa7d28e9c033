"""The build stage around TensorRT: options, the engines' profile and provenance read from our
real graphs, metadata (plan header, checks, atomic writes), --print-commands, and the one-line
error where TensorRT is missing. Building a real engine is in test_trt_runtime.py (TensorRT)."""

import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import HAS_TRT
from onerec_trt.backends.metadata import EngineMetadata, GpuInfo, plan_version
from onerec_trt.builder import BuildOptions, build
from onerec_trt.builder.jobs import Batches, engine_job
from onerec_trt.builder.stage import engine_metadata
from onerec_trt.builder.trt_builder import BuiltEngine
from onerec_trt.errors import UserError


def synthetic_plan(version=(10, 15, 1, 29), payload=b"not a real engine") -> bytes:
    """A byte string with a TensorRT plan header (TENSORRT.md section 5): tag, serialization
    version 0, the building TensorRT's version in bytes 24-27."""
    return struct.pack("<II", 0x74727466, 0) + bytes(16) + bytes(version) + payload


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "onerec_trt.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


def graphs(root: Path) -> tuple[Path, Path]:
    return root / "onnx" / "reference.bf16.onnx", root / "fp8" / "fp8.onnx"


# ---- the plan header ----------------------------------------------------------------------

def test_plan_version_reads_bytes_24_to_27():
    assert plan_version(synthetic_plan((11, 4, 0, 106))) == (11, 4, 0, 106)
    other_layout = bytearray(synthetic_plan())
    other_layout[4] = 1  # another serialization version: the version may sit elsewhere
    assert plan_version(bytes(other_layout)) is None
    with pytest.raises(ValueError, match="no TensorRT plan tag"):
        plan_version(b"\x7fELF" + bytes(40))
    with pytest.raises(ValueError, match="too short"):
        plan_version(b"ftrt")


# ---- what a graph tells the builder --------------------------------------------------------

def test_engine_jobs_of_our_graphs(tiny_pipeline):
    bf16, fp8 = graphs(tiny_pipeline)
    export = json.loads((tiny_pipeline / "onnx" / "export.json").read_text())
    s = export["history_length"]
    jobs = [engine_job(path, Batches(2, 8, 64)) for path in (bf16, fp8)]
    assert [j.name for j in jobs] == ["reference.bf16", "fp8"]
    assert [j.precision for j in jobs] == ["bf16", "fp8"]
    for job in jobs:
        assert job.profile == {"history": ([2, s], [8, s], [64, s])}
        assert job.inputs == {"history": (["N", s], "INT64")}
        assert set(job.outputs) == {"items", "scores", "codes"}
        assert job.outputs["scores"][1] == "FLOAT"
        assert job.model_sha256 == export["model_sha256"] and job.plugins == []
        assert job.export["options"]["beam"] == export["options"]["beam"]
    assert jobs[0].calibration is None
    assert jobs[1].calibration == tiny_pipeline / "fp8" / "calibration.json"


def test_option_errors(tiny_pipeline, tmp_path):
    bf16, fp8 = graphs(tiny_pipeline)
    cases = [
        (BuildOptions(onnx=[str(bf16)], opt_level=7), "outside TensorRT's 0-5"),
        (BuildOptions(onnx=[str(bf16)], min_batch=8, opt_batch=4), "1 <= min <= opt <= max"),
        (BuildOptions(onnx=[str(bf16)], workspace=0), "must be positive"),
        (BuildOptions(onnx=[str(bf16), str(bf16)]), "both become reference.bf16.plan"),
        (BuildOptions(onnx=[str(tmp_path / "nope.onnx")]), "ONNX graph not found"),
        (BuildOptions(onnx=[str(fp8)], calibration=str(tmp_path / "c.json")),
         "calibration file not found"),
    ]
    for opts, message in cases:
        opts.out = str(tmp_path / "out")
        with pytest.raises(UserError, match=message):
            build(opts)
    (tmp_path / "exists").mkdir()
    with pytest.raises(UserError, match="already exists"):
        build(BuildOptions(onnx=[str(bf16)], out=str(tmp_path / "exists")))


def test_only_the_batch_axis_may_be_dynamic(tmp_path):
    from onnx import TensorProto, helper, save

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", "S"])],
                          [helper.make_tensor_value_info("y", TensorProto.INT64, ["N", "S"])])
    save(helper.make_model(g), str(tmp_path / "two_axes.onnx"))
    with pytest.raises(UserError, match=r"dynamic axes \[0, 1\]"):
        engine_job(tmp_path / "two_axes.onnx", Batches())


# ---- metadata -------------------------------------------------------------------------------

def built_engine(plan: bytes, version="10.15.1.29") -> BuiltEngine:
    """What build_engine returns, filled in by hand (the plan bytes are synthetic)."""
    return BuiltEngine(plan=plan, timing_cache=b"", tensorrt_version=version,
                       inputs={"history": ([-1, 20], "INT64")},
                       outputs={"items": ([-1, 10], "INT64"), "scores": ([-1, 10], "FLOAT"),
                                "codes": ([-1, 10, 3], "INT64")},
                       seconds=1.5, network_flags=["STRONGLY_TYPED"])


H200 = GpuInfo("NVIDIA H200", (9, 0))


def test_metadata_written_atomically_and_read_back(tiny_pipeline, tmp_path):
    _, fp8 = graphs(tiny_pipeline)
    job = engine_job(fp8, Batches())
    plan = synthetic_plan()
    meta = engine_metadata(job, built_engine(plan), H200, {"opt_level": 3})
    plan_path, meta_path = EngineMetadata.write(tmp_path, job.name, plan, meta)
    assert plan_path.read_bytes() == plan and meta_path == tmp_path / "fp8.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp8.json", "fp8.plan"]
    read = EngineMetadata.read(plan_path)
    back = read.raw
    assert read.max_batch == 256 and read.precision == "fp8" and read.tensorrt_version == \
        "10.15.1.29"
    assert back["tensorrt"]["version"] == "10.15.1.29"
    assert back["tensorrt"]["plan_header_version"] == "10.15.1.29"
    assert back["gpu"] == {"name": "NVIDIA H200", "compute_capability": [9, 0]}
    assert back["profile"]["history"]["max"][0] == 256
    assert back["precision"] == "fp8" and back["model_sha256"] == job.model_sha256
    assert back["onnx"]["sha256"] == job.onnx_sha256
    calibration = tiny_pipeline / "fp8" / "calibration.json"
    assert back["calibration"]["path"] == str(calibration) and \
        len(back["calibration"]["sha256"]) == 64
    assert [t["name"] for t in back["outputs"]] == ["items", "scores", "codes"]
    read.check_plan(plan, "fp8.plan")  # the pair is consistent
    # a write that fails half way leaves the old file and no temporary behind
    with pytest.raises(TypeError):
        EngineMetadata.write(tmp_path, job.name, plan, {**meta, "oops": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp8.json", "fp8.plan"]
    assert EngineMetadata.read(plan_path).raw == back


def _metadata(job, plan: bytes, folder: Path, **change) -> EngineMetadata:
    """The build's metadata for ``plan``, written and read back (with ``change`` applied)."""
    raw = {**engine_metadata(job, built_engine(plan), H200, {}), **change}
    EngineMetadata.write(folder, job.name, plan, raw)
    return EngineMetadata.read(folder / f"{job.name}.plan")


def test_plan_and_metadata_must_agree(tiny_pipeline, tmp_path):
    job = engine_job(graphs(tiny_pipeline)[0], Batches())
    meta = _metadata(job, synthetic_plan(), tmp_path / "a")
    with pytest.raises(UserError, match="does not match its metadata"):
        meta.check_plan(synthetic_plan(payload=b"another engine"), "x.plan")
    liar = _metadata(job, synthetic_plan(), tmp_path / "b", plan_sha256=None,
                     tensorrt={**meta.raw["tensorrt"], "version": "10.8.0"})
    with pytest.raises(UserError, match=r"plan header says TensorRT 10\.15\.1\.29, its metadata "
                                        r"says 10\.8\.0"):
        liar.check_plan(synthetic_plan(), "x.plan")
    with pytest.raises(UserError, match="is not a TensorRT plan"):
        meta.check_plan(b"PK\x03\x04" + bytes(60), "x.plan")
    with pytest.raises(UserError, match="no engine metadata x.json"):
        EngineMetadata.read(tmp_path / "x.plan")
    (tmp_path / "x.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(UserError, match="not onerec-trt engine metadata"):
        EngineMetadata.read(tmp_path / "x.plan")


def test_runtime_checks_say_which_mismatch(tiny_pipeline, tmp_path):
    job = engine_job(graphs(tiny_pipeline)[1], Batches())
    meta = _metadata(job, synthetic_plan(), tmp_path)
    assert meta.check_runtime("10.15.1.29", H200, "fp8.plan") == []
    notes = meta.check_runtime("10.15.1", GpuInfo("NVIDIA H100 80GB HBM3", (9, 0)), "fp8.plan")
    assert len(notes) == 1 and "built on NVIDIA H200, this is NVIDIA H100" in notes[0]
    with pytest.raises(UserError, match=r"built with TensorRT 10\.15\.1\.29, this is TensorRT "
                                        r"11\.4\.0\.106"):
        meta.check_runtime("11.4.0.106", H200, "fp8.plan")
    with pytest.raises(UserError, match=r"compute capability 9\.0 \(NVIDIA H200\), this GPU is "
                                        r"NVIDIA L4 \(8\.9\)"):
        meta.check_runtime("10.15.1.29", GpuInfo("NVIDIA L4", (8, 9)), "fp8.plan")
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        meta.check_runtime("10.15.1.29", None, "fp8.plan")


# ---- the CLI ----------------------------------------------------------------------------

@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_build_without_tensorrt_is_one_clear_line(tiny_pipeline, tmp_path):
    bf16, fp8 = graphs(tiny_pipeline)
    out = tmp_path / "engines"
    proc = cli("build", "--onnx", bf16, "--onnx", fp8, "--out", out)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "TensorRT is not installed" in lines[0] and "pip install" in lines[0]
    assert "docs/tensorrt.md" in lines[0]
    assert proc.stdout.count("OK for TensorRT 10.15") == 2  # the lint ran first
    assert not out.exists() and not list(tmp_path.glob(".engines*"))


def test_build_stops_on_lint_errors(tiny_pipeline, tmp_path):
    import onnx

    model = onnx.load(str(graphs(tiny_pipeline)[0]))
    model.graph.node[-1].op_type = "Unique"  # not supported by TensorRT
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    proc = cli("build", "--onnx", bad, "--out", tmp_path / "engines")
    assert proc.returncode == 1 and "does not support Unique" in proc.stdout
    assert "FAILED" in proc.stdout and not (tmp_path / "engines").exists()


def test_print_commands(tiny_pipeline, tmp_path):
    bf16, fp8 = graphs(tiny_pipeline)
    s = json.loads((tiny_pipeline / "onnx" / "export.json").read_text())["history_length"]
    proc = cli("build", "--onnx", bf16, "--onnx", fp8, "--out", tmp_path / "eng",
               "--print-commands", "--max-batch", "128", "--opt-level", "4",
               "--workspace", "2048", "--timing-cache", tmp_path / "t.cache")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    trtexec = [shlex.split(line) for line in lines if line.startswith("trtexec ")]
    assert len(trtexec) == 2
    for argv, name, graph in zip(trtexec, ("reference.bf16", "fp8"), (bf16, fp8), strict=True):
        assert f"--onnx={graph}" in argv and f"--saveEngine={tmp_path}/eng/{name}.plan" in argv
        assert f"--minShapes=history:1x{s}" in argv and f"--maxShapes=history:128x{s}" in argv
        assert f"--optShapes=history:32x{s}" in argv and "--stronglyTyped" in argv
        assert "--builderOptimizationLevel=4" in argv
        assert "--memPoolSize=workspace:2048M" in argv
        assert f"--timingCacheFile={tmp_path}/t.cache" in argv
    poly = [line for line in lines if line.startswith("# polygraphy convert")]
    assert len(poly) == 2 and f"history:[128,{s}]" in poly[1]
    assert not (tmp_path / "eng").exists() and not (tmp_path / "t.cache").exists()


@pytest.mark.skipif(shutil.which("polygraphy", path=os.path.dirname(sys.executable)) is None,
                    reason="polygraphy is not installed")
@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed: polygraphy would build an engine")
def test_printed_polygraphy_command_parses(tiny_pipeline, tmp_path):
    """Polygraphy parses every option of the printed command and stops only at the missing
    TensorRT: no flag is misspelt and the pool limit is a size it understands."""
    proc = cli("build", "--onnx", graphs(tiny_pipeline)[1], "--out", tmp_path / "eng",
               "--print-commands", "--workspace", "1024")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("# polygraphy convert"))
    argv = shlex.split(line[2:])
    argv[0] = str(Path(sys.executable).with_name("polygraphy"))
    run = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
    assert "'tensorrt' is required" in run.stdout + run.stderr, run.stdout + run.stderr
    assert "Unrecognized" not in run.stdout + run.stderr


def test_the_default_plugin_registration_exists():
    """The default --plugin-module names the plugins package's real registration function;
    without TensorRT calling it fails with that package's own clear error."""
    import importlib

    from onerec_trt.backends.tensorrt_lib import load_plugin_module
    from onerec_trt.builder import DEFAULT_PLUGIN_MODULE

    module, _, function = DEFAULT_PLUGIN_MODULE.partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    if not HAS_TRT:
        with pytest.raises(UserError, match="TensorRT"):
            load_plugin_module(DEFAULT_PLUGIN_MODULE)
    with pytest.raises(AttributeError):
        load_plugin_module(f"{module}:no_such_function")


def test_a_plugin_graph_job_and_its_commands(tiny_pipeline, tmp_path):
    import onnx

    swap = pytest.importorskip("onerec_trt.plugins.graph_swap",
                               reason="the plugin swap is not here")
    from onerec_trt.plugins.spec import NAMESPACE

    model = swap.swap_graph(onnx.load(str(graphs(tiny_pipeline)[1]))).model
    path = tmp_path / "fp8.plugins.onnx"
    onnx.save(model, str(path))
    job = engine_job(path, Batches())
    assert job.name == "fp8.plugins" and job.precision == "fp8"
    assert job.plugins and all(p["namespace"] == NAMESPACE and p["version"] == "1"
                               for p in job.plugins)
    proc = cli("build", "--onnx", path, "--out", tmp_path / "eng", "--print-commands")
    assert proc.returncode == 0 and "# plugin nodes (onerec::" in proc.stdout


# ---- TensorRT calls whose failures are checked (the review's D2, D4, D6, D1) -------------------
# The objects below follow the documented return contract of TensorRT's IBuilderConfig and
# IPluginRegistry (None / False / -1 on failure); they stand in for no TensorRT result.

class _Cache:
    def __init__(self, blob: bytes):
        self.blob = blob


class _Config:
    """create_timing_cache: None for a blob TensorRT cannot read; set_timing_cache: False for a
    cache of another GPU/TensorRT (TENSORRT.md section 5)."""

    def __init__(self, unreadable=(), mismatched=(), profile_index=0):
        self.unreadable, self.mismatched, self.profile_index = unreadable, mismatched, \
            profile_index
        self.cache = None

    def create_timing_cache(self, blob):
        return None if blob in self.unreadable else _Cache(blob)

    def set_timing_cache(self, cache, ignore_mismatch):
        assert ignore_mismatch is False
        if cache.blob in self.mismatched:
            return False
        self.cache = cache
        return True

    def add_optimization_profile(self, profile):
        return self.profile_index


def test_timing_cache_falls_back_to_an_empty_one(caplog):
    from onerec_trt.builder.trt_builder import apply_timing_cache

    caplog.set_level("INFO", logger="onerec_trt")
    config = _Config(unreadable=[b"corrupt"], mismatched=[b"other gpu"])
    assert apply_timing_cache(config, b"good") is True
    assert config.cache.blob == b"good" and caplog.messages == []
    assert apply_timing_cache(config, b"corrupt") is False  # None: no traceback
    assert config.cache.blob == b"" and "could not be read" in caplog.messages[-1]
    assert apply_timing_cache(config, b"other gpu") is False
    assert config.cache.blob == b"" and "does not match" in caplog.messages[-1]
    assert apply_timing_cache(config, b"") is False and len(caplog.messages) == 2
    with pytest.raises(UserError, match="could not create an empty timing cache"):
        apply_timing_cache(_Config(unreadable=[b"", b"corrupt"]), b"corrupt")


def test_a_refused_optimization_profile_is_a_user_error(tiny_pipeline):
    from onerec_trt.builder.trt_builder import add_profile

    job = engine_job(graphs(tiny_pipeline)[1], Batches(1, 8, 32))
    assert add_profile(_Config(profile_index=0), object(), job) == 0
    with pytest.raises(UserError, match=r"TensorRT refused the optimization profile .*"
                                        r"'history': \[\[1, 20\], \[8, 20\], \[32, 20\]\]"):
        add_profile(_Config(profile_index=-1), object(), job)


def test_one_tensorrt_version_gate():
    import tomllib

    from onerec_trt.backends import tensorrt_lib
    from onerec_trt.plugins import spec

    assert tensorrt_lib.MIN_VERSION == spec.MIN_TENSORRT == (10, 9)
    assert "TensorRT >= 10.9 " in tensorrt_lib.INSTALL
    extra = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())[
        "project"]["optional-dependencies"]["tensorrt"]
    assert "tensorrt-cu12>=10.9,<11" in extra and "triton>=3.3" in extra
    tensorrt_lib.check_version("10.9.0.34")
    tensorrt_lib.check_version("11.4.0.106")
    with pytest.raises(UserError, match=r"TensorRT 10\.8\.0 is too old: .* >= 10\.9"):
        tensorrt_lib.check_version("10.8.0")
    # the lint's operator table is TensorRT 10.15's: an older TensorRT gets a warning
    notes = tensorrt_lib.version_notes("10.9.0.34")
    assert len(notes) == 1 and "older than the 10.15 operator table" in notes[0]
    assert tensorrt_lib.version_notes("10.15.1.29") == []
    assert len(tensorrt_lib.version_notes("11.4.0.106")) == 1  # newer major than the table


class _Registry:
    """IPluginRegistry.load_library: a handle, or None when the library does not load."""

    def __init__(self, loads: bool):
        self.loads, self.loaded = loads, []

    def load_library(self, path):
        self.loaded.append(path)
        return f"handle:{path}" if self.loads else None


def test_plugin_library_loads_are_checked(tmp_path):
    from onerec_trt.backends.tensorrt_lib import load_libraries

    lib = tmp_path / "libplugins.so"
    lib.write_bytes(b"\x7fELF")
    assert load_libraries(_Registry(True), [lib], "fp8.plan") == [f"handle:{lib}"]
    with pytest.raises(UserError, match=r"fp8.plan: TensorRT could not load plugin library"):
        load_libraries(_Registry(False), [lib], "fp8.plan")
    registry = _Registry(True)
    with pytest.raises(UserError, match="plugin library not found: .*missing.so"):
        load_libraries(registry, [tmp_path / "missing.so"], "fp8.plan")
    assert registry.loaded == []  # refused before TensorRT sees it


def test_the_plugin_ptx_arch_is_recorded_for_our_plugins():
    from onerec_trt.builder.trt_builder import record_plugin_arch

    plugins = [{"name": "TrieBeamExpand", "namespace": "onerec", "version": "1"},
               {"name": "Other", "namespace": "vendor", "version": "1"}]
    record_plugin_arch(plugins, None)
    assert "ptx_arch" not in plugins[0]
    record_plugin_arch(plugins, 89)
    assert plugins[0]["ptx_arch"] == 89 and plugins[0]["ptx_target"] == "sm_89"
    assert "ptx_arch" not in plugins[1]
    record_plugin_arch(plugins, 90)
    assert plugins[0]["ptx_target"] == "sm_90a"

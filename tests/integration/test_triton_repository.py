"""The Triton model repository without a server: layout, config.pbtxt parsed with Triton's own
ModelConfig schema, the GPU variant against engine metadata (no engine exists anywhere: the
test writes the metadata JSON the build stage will write), the guard's checks, user errors."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from onerec_trt.artifacts import sha256_file
from onerec_trt.errors import UserError
from onerec_trt.graphs import session_options
from onerec_trt.triton import RepositoryOptions, check_repository, export_repository
from onerec_trt.triton.repository import BACKEND

S, K, L, ITEMS = 20, 10, 4, 40  # the tiny pipeline's contract (checked below)


def _config(path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _dtype(value):
    return model_config_pb2.DataType.Name(value)


def _backend_module(name):
    spec = importlib.util.spec_from_file_location(f"_triton_{name}", BACKEND / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _opts(pipe, out, **kw):
    return RepositoryOptions(model=str(pipe / "model"), onnx=str(pipe / "onnx"), out=str(out),
                             **kw)


def _cli(*args, code=0):
    proc = subprocess.run([sys.executable, "-m", "onerec_trt.cli", "triton", *map(str, args)],
                          capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == code, proc.stdout + proc.stderr
    return proc


def _engine_meta(max_batch=32, opt=16, **override):
    """Metadata as the build stage writes it (format onerec-trt-engine/1, docs/tensorrt.md)."""
    meta = {
        "format": "onerec-trt-engine/1", "precision": "fp8",
        "tensorrt": {"version": "10.13.0.35", "strongly_typed": True},
        "gpu": {"name": "NVIDIA H200", "compute_capability": [9, 0]},
        "profile": {"history": {"min": [1, S], "opt": [opt, S], "max": [max_batch, S]}},
        "inputs": [{"name": "history", "dtype": "INT64", "shape": [-1, S]}],
        "outputs": [{"name": "items", "dtype": "INT64", "shape": [-1, K]},
                    {"name": "scores", "dtype": "FLOAT", "shape": [-1, K]},
                    {"name": "codes", "dtype": "INT64", "shape": [-1, K, L]}],
        "plugins": [{"name": "TrieBeamStep", "namespace": "onerec", "version": "1"}],
        "onnx": {"path": "runs/x/fp8/fp8.onnx", "sha256": "0" * 64},
    }
    meta.update(override)
    return meta


def _engine_dir(folder, metas):
    """Plans (stand-in bytes: no engine can be built here) and their metadata JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, meta in metas.items():
        plan = folder / f"{name}.plan"
        plan.write_bytes(b"ftrt stand-in for a serialized engine: " + name.encode())
        meta = {"plan_sha256": sha256_file(plan), **meta}
        (folder / f"{name}.json").write_text(json.dumps(meta))
    return folder


def test_cpu_repository_layout_parses_and_serves_the_graphs(tiny_pipeline, tmp_path):
    repo = tmp_path / "repo"
    info = export_repository(_opts(tiny_pipeline, repo, ab=True))
    assert info.variant == "cpu" and info.public == {"onerec": "fp8", "onerec_bf16": "bf16"}
    assert info.contract["max_history"] == S and info.contract["num_items"] == ITEMS
    configs = {p.parent.name: _config(p) for p in repo.glob("*/config.pbtxt")}
    assert set(configs) == {"onerec", "onerec_bf16", "onerec_guard", "onerec_fp8_generate",
                            "onerec_bf16_generate"}
    for name in ("onerec", "onerec_bf16"):
        ens = configs[name]
        assert ens.platform == "ensemble" and ens.max_batch_size == 64
        assert [(t.name, _dtype(t.data_type), list(t.dims)) for t in ens.input] == [
            ("history", "TYPE_INT64", [S])]
        assert [(t.name, _dtype(t.data_type), list(t.dims)) for t in ens.output] == [
            ("items", "TYPE_INT64", [K]), ("scores", "TYPE_FP32", [K]),
            ("codes", "TYPE_INT64", [K, L])]
        steps = [s.model_name for s in ens.ensemble_scheduling.step]
        assert steps == ["onerec_guard", f"onerec_{info.public[name]}_generate"]
    generate = configs["onerec_fp8_generate"]
    assert generate.backend == "python" and generate.max_batch_size == 64
    assert generate.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert generate.dynamic_batching.max_queue_delay_microseconds == 100
    assert generate.parameters["onnx_file"].string_value == "model.onnx"
    assert configs["onerec_guard"].parameters["num_items"].string_value == str(ITEMS)
    for precision, graph in (("fp8", tiny_pipeline / "fp8" / "fp8.cpu.onnx"),
                             ("bf16", tiny_pipeline / "onnx" / "reference.cpu.onnx")):
        copied = repo / f"onerec_{precision}_generate" / "1" / "model.onnx"
        assert sha256_file(copied) == sha256_file(graph)
    assert (repo / "onerec_guard" / "1" / "model.py").read_text() == (
        BACKEND / "guard.py").read_text()
    assert (repo / "onerec" / "1").is_dir()  # ensembles need an (empty) version folder
    assert json.loads((repo / "items.json").read_text())["num_items"] == ITEMS
    assert json.loads((repo / "manifest.json").read_text())["stage"] == "triton"
    assert check_repository(repo) == []


def test_gpu_repository_matches_the_engine_metadata(tiny_pipeline, tmp_path):
    meta = _engine_meta(max_batch=32, opt=16)
    engines = _engine_dir(tmp_path / "engines", {"fp8": meta})
    repo = tmp_path / "gpu"
    info = export_repository(_opts(tiny_pipeline, repo, engine=str(engines), instances=2))
    assert info.variant == "gpu"
    generate = _config(repo / "onerec_fp8_generate" / "config.pbtxt")
    assert generate.platform == "tensorrt_plan" and generate.default_model_filename == "model.plan"
    assert generate.max_batch_size == 32  # the profile's max batch
    assert list(generate.dynamic_batching.preferred_batch_size) == [16]  # the profile's opt
    group = generate.instance_group[0]
    assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU and group.count == 2
    declared = {t.name: (_dtype(t.data_type), [-1, *t.dims])
                for t in [*generate.input, *generate.output]}
    names = {"INT64": "TYPE_INT64", "FLOAT": "TYPE_FP32"}
    assert declared == {t["name"]: (names[t["dtype"]], t["shape"])
                        for t in meta["inputs"] + meta["outputs"]}
    plan = repo / "onerec_fp8_generate" / "1" / "model.plan"
    assert plan.read_bytes() == (engines / "fp8.plan").read_bytes()
    assert json.loads(plan.with_suffix(".json").read_text()) == json.loads(
        (engines / "fp8.json").read_text())
    assert info.generate_models["fp8"]["profile"]["history"] == {"min": 1, "opt": 16, "max": 32}
    assert check_repository(repo) == []
    # the guard and the public ensemble are the CPU repository's, byte for byte
    cpu = tmp_path / "cpu"
    export_repository(_opts(tiny_pipeline, cpu, max_batch_size=32, preferred_batch_sizes=[16]))
    for name in ("onerec", "onerec_guard"):
        assert (repo / name / "config.pbtxt").read_text() == (
            cpu / name / "config.pbtxt").read_text()


def test_minimal_metadata_and_an_engine_found_by_its_precision_for_ab(tiny_pipeline, tmp_path):
    tensors = {t["name"]: {"dtype": t["dtype"].lower(), "shape": t["shape"]}
               for t in _engine_meta()["inputs"] + _engine_meta()["outputs"]}
    minimal = {"profile": [{"history": {"min": 1, "opt": 8, "max": 64}}],
               "inputs": {"history": tensors.pop("history")}, "outputs": tensors}
    engines = _engine_dir(tmp_path / "engines", {
        "fp8": minimal, "other": _engine_meta(max_batch=48, precision="bf16")})
    repo = tmp_path / "repo"
    info = export_repository(_opts(tiny_pipeline, repo, engine=str(engines), ab=True))
    assert info.public == {"onerec": "fp8", "onerec_bf16": "bf16"}
    assert info.generate_models["bf16"]["engine"].endswith("other.plan")
    for name in ("onerec", "onerec_fp8_generate", "onerec_bf16_generate"):
        assert _config(repo / name / "config.pbtxt").max_batch_size == 48  # the smaller max
    assert check_repository(repo) == []


@pytest.mark.parametrize("change, message", [
    ({"inputs": [{"name": "history", "dtype": "INT64", "shape": [-1, S + 1]}]}, "contract says"),
    ({"inputs": [{"name": "history", "dtype": "INT32", "shape": [-1, S]}]}, "contract says"),
    ({"inputs": [{"name": "history", "dtype": "INT64", "shape": [8, S]}]}, "fixed batch axis"),
    ({"outputs": [{"name": "items", "dtype": "INT64", "shape": [-1, K]}]}, "differ from"),
    ({"profile": {"input_ids": {"min": 1, "opt": 1, "max": 1}}}, "no optimization profile"),
    ({"profile": {"history": {"min": 8, "opt": 4, "max": 16}}}, "min <= opt <= max"),
    ({"profile": {"history": {"min": 2, "opt": 4, "max": 16}}}, "min batch is 2"),
    ({"inputs": "history"}, "must list the engine's tensors"),
    ({"inputs": [{"name": "history", "dtype": "complex", "shape": [-1, S]}]}, "data type"),
    ({"plan_sha256": "0" * 64}, "does not match its metadata"),
    ({"model_sha256": "f" * 64}, "made from another model"),
])
def test_engine_metadata_that_breaks_the_contract_is_refused(tiny_pipeline, tmp_path, change,
                                                             message):
    engines = _engine_dir(tmp_path / "engines", {"fp8": _engine_meta(**change)})
    with pytest.raises(UserError, match=message):
        export_repository(_opts(tiny_pipeline, tmp_path / "repo", engine=str(engines)))
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("kw, message", [
    ({"max_batch_size": 64}, "above the engine profile's max batch 32"),
    ({"preferred_batch_sizes": [8, 40]}, "exceed max_batch_size 32"),
    ({"ab": True}, "no bf16 engine"),
    ({"engine": "missing-folder"}, "engine not found"),
    ({"instances": 0}, "--instances must be positive"),
    ({"precision": "int4"}, "unknown --precision"),
])
def test_bad_options_are_user_errors(tiny_pipeline, tmp_path, kw, message):
    engines = _engine_dir(tmp_path / "engines", {"fp8": _engine_meta()})
    kw = {"engine": str(engines), **kw}
    if kw["engine"] == "missing-folder":
        kw["engine"] = str(tmp_path / "missing-folder")
    with pytest.raises(UserError, match=message):
        export_repository(_opts(tiny_pipeline, tmp_path / "repo", **kw))


def test_missing_metadata_and_graphs_of_another_model_are_refused(tiny_pipeline, tmp_path):
    engines = _engine_dir(tmp_path / "engines", {"fp8": _engine_meta()})
    (engines / "fp8.json").unlink()
    with pytest.raises(UserError, match="engine metadata"):
        export_repository(_opts(tiny_pipeline, tmp_path / "a", engine=str(engines)))
    onnx_dir = tmp_path / "onnx"
    shutil.copytree(tiny_pipeline / "onnx", onnx_dir)
    meta = json.loads((onnx_dir / "export.json").read_text())
    meta["model_sha256"] = "f" * 64
    (onnx_dir / "export.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="fp8 graph not found.*\n.*run 'onerec-trt quantize'"):
        export_repository(_opts(tiny_pipeline, tmp_path / "c", fp8=str(tmp_path / "no-fp8")))
    with pytest.raises(UserError, match="another model"):
        export_repository(RepositoryOptions(model=str(tiny_pipeline / "model"),
                                            onnx=str(onnx_dir), fp8=str(tiny_pipeline / "fp8"),
                                            out=str(tmp_path / "b")))


def test_check_finds_edits_that_break_the_repository(tiny_pipeline, tmp_path):
    engines = _engine_dir(tmp_path / "engines", {"fp8": _engine_meta(max_batch=32)})
    repo = tmp_path / "repo"
    _cli("export", "--model", tiny_pipeline / "model", "--onnx", tiny_pipeline / "onnx",
         "--engine", engines, "--out", repo, "--queue-delay-us", "250", "--instances", "3")
    generate = repo / "onerec_fp8_generate" / "config.pbtxt"
    parsed = _config(generate)
    assert parsed.dynamic_batching.max_queue_delay_microseconds == 250
    assert parsed.instance_group[0].count == 3 and parsed.max_batch_size == 32
    assert "OK" in _cli("check", "--repo", repo).stdout
    generate.write_text(generate.read_text().replace("max_batch_size: 32", "max_batch_size: 128"))
    ens = repo / "onerec" / "config.pbtxt"
    ens.write_text(ens.read_text().replace('value: "checked_history"\n    }\n    output_map',
                                           'value: "typo"\n    }\n    output_map'))
    (repo / "onerec_fp8_generate" / "1" / "model.plan").write_bytes(b"ftrt another engine")
    problems = "\n".join(check_repository(repo))
    assert "model.plan does not match its metadata" in problems
    (repo / "onerec_fp8_generate" / "1" / "model.plan").write_bytes(
        (engines / "fp8.plan").read_bytes())
    problems = "\n".join(check_repository(repo))
    assert "above the engine profile's max batch 32" in problems
    assert "onerec/config.pbtxt: max_batch_size 32 is above" not in problems
    assert "reads 'typo' before anything writes it" in problems
    ens.write_text("name: 'onerec' max_batch_size: [")
    assert "onerec/config.pbtxt" in check_repository(repo)[0]
    proc = _cli("check", "--repo", repo, code=1)
    assert "onerec/config.pbtxt" in proc.stdout and "1 problem(s)" in proc.stdout


@pytest.mark.parametrize("rows, message", [
    ([[0] * 17 + [3, 4, 5]], None),
    ([[0] * 19 + [ITEMS]], None),
    ([[0] * 19 + [ITEMS + 1]], "item id 41 is outside the catalogue"),
    ([[0] * 17 + [3, -2, 5]], "item id -2 is outside"),
    ([[0] * 17 + [3, 4, 5], [0] * 20], "row 1: the history is all padding"),
    ([[3, 4, 5] + [0] * 17], "left-padded"),
    ([[0] * 10 + [3] + [0] * 8 + [4]], "left-padded"),
])
def test_guard_checks(rows, message):
    problem = _backend_module("guard").check_history(np.array(rows, dtype=np.int64), ITEMS)
    if message is None:
        assert problem is None
    else:
        assert message in problem


def test_served_sessions_use_the_projects_fp8_session_option():
    generate = _backend_module("onnx_generate")
    key = "session.disable_quant_qdq"
    assert generate.session_options(1).get_session_config_entry(key) == "1"
    assert generate.session_options(1).get_session_config_entry(key) == (
        session_options().get_session_config_entry(key))


def _graph_with(src, out, history_length=None, table_rows=None):
    """A stand-in graph with the contract's names and dtypes: ``history`` [N, history_length]
    (default S), outputs computed from an embedding table of ``table_rows`` rows (default: the
    catalogue's), so a graph of a smaller catalogue fails on the highest ids."""
    from onnx import TensorProto, helper, numpy_helper, save_model

    rows = table_rows or ITEMS + 1
    table = numpy_helper.from_array(np.arange(rows, dtype=np.float32).reshape(rows, 1), "table")
    nodes = [
        helper.make_node("Gather", ["table", "history"], ["emb"], axis=0),  # [N, S, 1]
        helper.make_node("ReduceSum", ["emb", "axes1"], ["score"], keepdims=0),  # [N, 1]
        helper.make_node("TopK", ["score_k", "k"], ["scores", "topi"]),
        helper.make_node("Expand", ["score", "shape_nk"], ["score_k"]),
        helper.make_node("Cast", ["topi"], ["items"], to=TensorProto.INT64),
        helper.make_node("Unsqueeze", ["items", "axes2"], ["items3"]),
        helper.make_node("Expand", ["items3", "shape_nkl"], ["codes"]),
    ]
    consts = [numpy_helper.from_array(np.array(v, dtype=np.int64), n) for n, v in (
        ("axes1", [1]), ("k", [K]), ("shape_nk", [1, K]), ("axes2", [2]), ("shape_nkl", [1, K, L]))]
    graph = helper.make_graph(
        nodes, "stand-in",
        [helper.make_tensor_value_info("history", TensorProto.INT64,
                                       ["N", history_length or S])],
        [helper.make_tensor_value_info("items", TensorProto.INT64, ["N", "K"]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", "K"]),
         helper.make_tensor_value_info("codes", TensorProto.INT64, ["N", "K", "L"])],
        [table, *consts])
    out.mkdir(parents=True, exist_ok=True)
    save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]),
               out / "fp8.cpu.onnx")
    return out


def test_the_stand_in_graph_serves_the_contract(tiny_pipeline, tmp_path):
    """The graphs the next test refuses differ from this one in one thing only."""
    folder = _graph_with(tiny_pipeline, tmp_path / "fp8")
    export_repository(_opts(tiny_pipeline, tmp_path / "repo", fp8=str(folder)))
    assert check_repository(tmp_path / "repo") == []


@pytest.mark.parametrize("kw, message", [
    ({"history_length": S + 5}, f"graph input history is int64 \\['N', {S + 5}\\], the contract "
                                f"says int64 \\[N, {S}\\]"),
    ({"table_rows": 10}, "a request of this model's item ids fails in the graph"),
])
def test_graphs_that_would_fail_every_request_are_refused_at_export(tiny_pipeline, tmp_path,
                                                                    kw, message):
    """A graph of another history length, or of a smaller catalogue (another model) in a
    folder with no manifest to say so: export refuses it in one line, and writes nothing."""
    folder = _graph_with(tiny_pipeline, tmp_path / "fp8", **kw)
    assert not (folder / "manifest.json").exists()
    with pytest.raises(UserError, match=message) as err:
        export_repository(_opts(tiny_pipeline, tmp_path / "repo", fp8=str(folder)))
    assert "\n" not in str(err.value).split("\nNote")[0]
    assert not (tmp_path / "repo").exists()
    proc = _cli("export", "--model", tiny_pipeline / "model", "--onnx", tiny_pipeline / "onnx",
                "--fp8", folder, "--out", tmp_path / "repo", code=2)
    assert "Traceback" not in proc.stderr and "fp8.cpu.onnx" in proc.stderr


def test_export_refuses_an_export_json_of_another_history_length(tiny_pipeline, tmp_path):
    onnx_dir = shutil.copytree(tiny_pipeline / "onnx", tmp_path / "onnx")
    meta = json.loads((onnx_dir / "export.json").read_text())
    meta["history_length"] = S + 1
    (onnx_dir / "export.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=f"history length {S + 1}, the model's is {S}"):
        export_repository(RepositoryOptions(model=str(tiny_pipeline / "model"),
                                            onnx=str(onnx_dir), fp8=str(tiny_pipeline / "fp8"),
                                            out=str(tmp_path / "repo")))


def test_check_finds_edited_model_py_and_a_swapped_graph(tiny_pipeline, tmp_path):
    repo = tmp_path / "repo"
    export_repository(_opts(tiny_pipeline, repo))
    assert "OK" in _cli("check", "--repo", repo).stdout
    code = repo / "onerec_fp8_generate" / "1" / "model.py"
    code.write_text(code.read_text() + "\n# edited by hand\n")
    proc = _cli("check", "--repo", repo, code=1)
    assert "onerec_fp8_generate/1/model.py: sha256 differs" in proc.stdout
    assert "1 problem(s)" in proc.stdout
    shutil.copyfile(BACKEND / "onnx_generate.py", code)
    assert check_repository(repo) == []
    _graph_with(tiny_pipeline, tmp_path / "other", history_length=S + 5)
    shutil.copyfile(tmp_path / "other" / "fp8.cpu.onnx", repo / "onerec_fp8_generate" / "1" /
                    "model.onnx")
    problems = "\n".join(check_repository(repo))
    assert f"onerec_fp8_generate/1/model.onnx: graph input history is int64 ['N', {S + 5}]" \
        in problems
    assert "onerec_fp8_generate/1/model.onnx: sha256 differs" in problems
    (repo / "onerec_guard" / "1" / "extra.py").write_text("print('not from export')\n")
    assert "onerec_guard/1/extra.py: not written by export" in "\n".join(check_repository(repo))


@pytest.mark.parametrize("args, message", [
    (["serve", "--http-port", "99999"], "--http-port: expected a port 0..65535"),
    (["serve", "--grpc-port", "-1"], "--grpc-port: expected a port 0..65535"),
    (["serve", "--metrics-port", "65536"], "--metrics-port: expected a port 0..65535"),
    (["load", "--batch-sizes", "0"], "--batch-sizes: expected positive integers"),
    (["load", "--batch-sizes", "4,-2"], "--batch-sizes: expected positive integers"),
])
def test_bad_ports_and_batch_sizes_are_refused_at_parsing(tmp_path, args, message):
    """Refused at once, in one line, before any repository is read or server started."""
    proc = _cli(*args, "--repo", tmp_path / "none", code=2)
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_batch_buckets_pad_gpu_batches_and_are_refused_on_cpu(tiny_pipeline, tmp_path):
    """--batch-buckets (TensorRT#4849: AOT plugins leak on every shape change): one CUDA graph
    per bucket in the generate model's config; a CPU repository has no CUDA graphs and says so."""
    engines = _engine_dir(tmp_path / "engines", {"fp8": _engine_meta(max_batch=32)})
    common = ("--model", tiny_pipeline / "model", "--onnx", tiny_pipeline / "onnx")
    for spec, sizes in (("max", [32]), ("pow2", [1, 2, 4, 8, 16, 32]), ("1,8,32", [1, 8, 32])):
        repo = tmp_path / f"repo-{spec}"
        _cli("export", *common, "--engine", engines, "--out", repo, "--batch-buckets", spec)
        parsed = _config(repo / "onerec_fp8_generate" / "config.pbtxt")
        assert [g.batch_size for g in parsed.optimization.cuda.graph_spec] == sizes
        assert list(parsed.dynamic_batching.preferred_batch_size) == sizes
    for spec, message in (("1,8", "must be >= 1 and end at max_batch_size 32"),
                          ("big", "expected max, pow2 or sizes")):
        bad = _cli("export", *common, "--engine", engines, "--out", tmp_path / "bad",
                   "--batch-buckets", spec, code=2)
        assert message in bad.stderr and not (tmp_path / "bad").exists()
    cpu = _cli("export", *common, "--out", tmp_path / "cpu", "--batch-buckets", "max", code=2)
    assert "for GPU repositories" in cpu.stderr


def test_large_graphs_are_checked_by_their_item_table_not_a_session(tiny_pipeline, tmp_path,
                                                                    monkeypatch):
    """Past graphs.LARGE_BYTES of weights an ONNX Runtime session costs too much memory (killed
    at 23 GiB for the paper-scale FP8 CPU graph), so export compares the item embedding's rows
    with the catalogue instead of running a request."""
    import onnx
    from onnx import numpy_helper

    import onerec_trt.graphs

    monkeypatch.setattr(onerec_trt.graphs, "LARGE_BYTES", -1)  # every graph counts as large
    export_repository(_opts(tiny_pipeline, tmp_path / "ok"))
    fp8 = tmp_path / "fp8"
    fp8.mkdir()
    graph = onnx.load(str(tiny_pipeline / "fp8" / "fp8.cpu.onnx"))
    table = next(t for t in graph.graph.initializer if t.name.endswith("item_emb.weight"))
    table.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(table)[:-3], table.name))
    onnx.save(graph, str(fp8 / "fp8.cpu.onnx"))  # another model's: 3 items fewer, no manifest
    with pytest.raises(UserError, match=f"its item embedding has {ITEMS - 3} items, the model "
                                        f"{ITEMS}"):
        export_repository(_opts(tiny_pipeline, tmp_path / "bad", fp8=str(fp8)))
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("version, plugins, leaks", [
    ("11.1.0.12", True, True), ("11.2.0.5", True, True), ("11.2.1.4", True, True),
    ("11.2", True, True), ("11.2.2.1", True, False), ("11.3.0", True, False),
    ("11.0.9", True, False), ("10.13.0.35", True, False), ("11.1.0", False, False),
    ("", True, False), (None, True, False),
])
def test_which_engines_leak_plugin_modules(tmp_path, version, plugins, leaks):
    """TensorRT#4849: AOT plugins leak CUDA modules on every shape change in 11.1-11.2.1; the
    engine metadata records the version and the plugins."""
    from onerec_trt.backends.metadata import EngineMetadata
    from onerec_trt.triton.repository import leaks_plugin_modules

    meta = _engine_meta(tensorrt={"version": version} if version is not None else {})
    if not plugins:
        meta["plugins"] = []
    _engine_dir(tmp_path, {"fp8": meta})
    assert leaks_plugin_modules(EngineMetadata.read(tmp_path / "fp8.plan")) == leaks


def test_batch_buckets_default_to_max_for_an_engine_that_leaks(tiny_pipeline, tmp_path, caplog):
    """An engine with plugins built by TensorRT 11.1-11.2.1 gets --batch-buckets max unless
    told otherwise (none, or other buckets); other engines keep every batch size."""
    leaky = _engine_dir(tmp_path / "leaky", {"fp8": _engine_meta(
        max_batch=32, tensorrt={"version": "11.2.1.4"})})
    fine = _engine_dir(tmp_path / "fine", {"fp8": _engine_meta(max_batch=32)})
    for engines, buckets, want in ((leaky, None, [32]), (leaky, "none", []),
                                   (leaky, "1,8,32", [1, 8, 32]), (fine, None, [])):
        repo = tmp_path / f"repo-{engines.name}-{buckets}"
        caplog.clear()
        caplog.set_level("INFO", logger="onerec_trt")
        export_repository(_opts(tiny_pipeline, repo, engine=str(engines),
                                batch_buckets=buckets))
        logged = caplog.messages
        parsed = _config(repo / "onerec_fp8_generate" / "config.pbtxt")
        assert [g.batch_size for g in parsed.optimization.cuda.graph_spec] == want
        assert ("TensorRT#4849" in "".join(logged)) == (buckets is None and want == [32])

"""The graph swap: plugin-bearing graphs that give the standard-op graphs' items on the CPU."""

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from helpers import random_histories
from onerec_trt.artifacts import sha256_file
from onerec_trt.cli import main as cli_main
from onerec_trt.errors import UserError
from onerec_trt.graphs import make_session
from onerec_trt.plugins import PluginsOptions, PluginsReport, plugins
from onerec_trt.plugins.spec import NAMESPACE, PLUGINS


@pytest.fixture(scope="module")
def swapped(tiny_pipeline, tmp_path_factory):
    """The tiny pipeline's export and quantize folders swapped by the CLI stage into its own
    folder ``plugins``; the input folders stay as they were."""
    root = tmp_path_factory.mktemp("swapped")
    before = {p: sha256_file(p) for p in tiny_pipeline.rglob("*.*") if p.is_file()}
    code = cli_main(["plugins", "--onnx", str(tiny_pipeline / "onnx"), "--fp8",
                     str(tiny_pipeline / "fp8"), "--out", str(root / "plugins"),
                     "--check-users", "16"])
    assert code == 0
    assert before == {p: sha256_file(p) for p in tiny_pipeline.rglob("*.*") if p.is_file()}
    return root, tiny_pipeline


def _ops(model: onnx.ModelProto) -> dict:
    counts = {}
    for node in model.graph.node:
        counts[(node.domain, node.op_type)] = counts.get((node.domain, node.op_type), 0) + 1
    return counts


def test_swap_writes_plugin_graphs_for_bf16_and_fp8(swapped):
    root, _ = swapped
    levels = 4  # the tiny pipeline's semantic IDs have an extra disambiguation level
    for base in ("reference", "fp8"):
        for suffix, logits_type in ((".plugins.onnx", TensorProto.BFLOAT16),
                                    (".plugins.cpu.onnx", TensorProto.FLOAT)):
            model = onnx.load(str(root / "plugins" / f"{base}{suffix}"))
            onnx.checker.check_model(model)
            ops = _ops(model)
            assert ops[(NAMESPACE, "TrieBeamExpand")] == levels
            assert ops[(NAMESPACE, "TrieBeamSelect")] == levels
            assert ops[(NAMESPACE, "CodesToItem")] == 1
            assert not any(op in ("TopK", "LogSoftmax") for _, op in ops)
            assert not any(t.name.startswith("step.") for t in model.graph.initializer)
            for node in model.graph.node:
                if node.domain == NAMESPACE:
                    assert node.op_type in PLUGINS
                    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                    assert attrs["plugin_namespace"] == NAMESPACE.encode()
            expand = [n for n in model.graph.node if n.op_type == "TrieBeamExpand"]
            assert [_attr(n, "step") for n in expand] == list(range(levels))
            assert {_attr(n, "beam_out") for n in expand} == {10}
            types = _types(model)
            assert {types[n.input[0]] for n in expand} == {logits_type}
            assert types["scores"] == TensorProto.FLOAT
    fp8 = onnx.load(str(root / "plugins" / "fp8.plugins.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in fp8.graph.node)


def _attr(node, name):
    return next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name)


def _types(model) -> dict:
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {t.name: t.data_type for t in g.initializer}
    types.update({v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.output]})
    return types


def test_swap_records_its_check_and_the_manifest(swapped):
    root, sources = swapped
    folder = root / "plugins"
    report = PluginsReport.load(folder / "plugins.json")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["stage"] == "plugins"
    for graphs in (("reference.plugins.onnx", "reference.plugins.cpu.onnx"),
                   ("fp8.plugins.onnx", "fp8.plugins.cpu.onnx")):
        check = report.cpu_agreement[graphs[1]]
        assert check["identical_users"] == check["users"] == 16 and check["codes_identical"]
        for name in (*graphs, "plugins.json"):
            assert manifest["files"][name] == sha256_file(folder / name)
        assert report.graphs[graphs[0]]["trie_bytes"] > 0
    source = str(sources / "onnx" / "reference.cpu.onnx")
    assert report.graphs["reference.plugins.cpu.onnx"]["source"] == source
    assert manifest["inputs"][source] == sha256_file(source)


def test_plugin_cpu_graphs_give_the_standard_items(swapped):
    root, sources = swapped
    hist = random_histories(128, 20, 40, seed=11).numpy()
    for folder, base in (("onnx", "reference"), ("fp8", "fp8")):
        standard = make_session(sources / folder / f"{base}.cpu.onnx").run(None, {"history": hist})
        plugins = make_session(root / "plugins" / f"{base}.plugins.cpu.onnx").run(
            None, {"history": hist})
        np.testing.assert_array_equal(plugins[0], standard[0])  # items
        np.testing.assert_array_equal(plugins[2], standard[2])  # codes
        np.testing.assert_allclose(plugins[1], standard[1], atol=1e-5, rtol=0)


def test_swap_refuses_existing_outputs_and_foreign_graphs(swapped, tmp_path):
    root, sources = swapped
    with pytest.raises(UserError, match="already exists"):
        plugins(PluginsOptions(onnx=str(sources / "onnx"), out=str(root / "plugins"),
                               check_users=0))
    with pytest.raises(UserError, match="no exported graph"):
        plugins(PluginsOptions(onnx=str(tmp_path), out=str(tmp_path / "p"), check_users=0))
    x = onnx.helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    g = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x],
                               [onnx.helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    onnx.save(onnx.helper.make_model(g), str(tmp_path / "reference.cpu.onnx"))
    with pytest.raises(UserError, match="no TopK"):
        plugins(PluginsOptions(onnx=str(tmp_path), out=str(tmp_path / "p"), check_users=0))
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_shipped_model_plugin_graph_gives_identical_items_on_real_users(shipped_pipeline):
    from onerec_trt.data import pad_histories
    from onerec_trt.data.samplers import sample_users
    from onerec_trt.layout import CPU_GRAPH
    from onerec_trt.model.checkpoint import load_model

    bundle = load_model("default")
    split = bundle.load_data().split()
    users = sample_users(split.num_users, 500, seed=0)
    tests = split.histories("test")
    hist = pad_histories([tests[i] for i in users], bundle.config.max_history)
    standard = make_session(shipped_pipeline / "onnx" / CPU_GRAPH).run(None, {"history": hist})
    swapped = make_session(shipped_pipeline / "plugins" / "reference.plugins.cpu.onnx").run(
        None, {"history": hist})
    assert len(hist) == 500
    np.testing.assert_array_equal(swapped[0], standard[0])
    np.testing.assert_array_equal(swapped[2], standard[2])
    assert (swapped[0] > 0).mean() > 0.99  # real items, not dead beams


@pytest.mark.slow
def test_paper_scale_catalogue_runs_through_the_plugin_graph_on_cpu(tmp_path):
    """3 x 8192 codes, 1M items, beam 512, through the CLI as a user runs it: init, export (the
    csr step: dense tables would need > 2 GiB), plugins; the plugin graph gives the standard
    graph's and torch's items."""
    from onerec_trt.model.checkpoint import load_model
    from onerec_trt.model.generate import beam_search

    model, onnx_dir, plugins_dir = tmp_path / "m", tmp_path / "e", tmp_path / "p"
    assert cli_main(["init", "--preset", "tiny", "--items", "1000000", "--codebook", "8192",
                     "--levels", "3", "--histories", "2", "--out", str(model)]) == 0
    assert cli_main(["export", "--model", str(model), "--beam", "512", "--topk", "10",
                     "--out", str(onnx_dir)]) == 0
    assert cli_main(["plugins", "--onnx", str(onnx_dir), "--out", str(plugins_dir),
                     "--check-users", "2"]) == 0
    report = PluginsReport.load(plugins_dir / "plugins.json")
    assert report.graphs["reference.plugins.cpu.onnx"]["beam_out"] == [512] * 3
    assert report.graphs["reference.plugins.cpu.onnx"]["trie_bytes"] > 16 * 2**20
    assert sum(p.stat().st_size for p in onnx_dir.glob("*.onnx*")) < 2**30
    hist = np.load(model / "histories.npy")
    items, scores, chosen = make_session(plugins_dir / "reference.plugins.cpu.onnx").run(
        None, {"history": hist})
    bundle = load_model(model)
    assert (items > 0).all() and (np.diff(scores, axis=1) <= 0).all()
    np.testing.assert_array_equal(bundle.semantic_ids.codes[items], chosen)
    np.testing.assert_array_equal(items, make_session(onnx_dir / "reference.cpu.onnx").run(
        None, {"history": hist})[0])
    fp32 = make_session(onnx_dir / "reference.fp32.onnx").run(None, {"history": hist})
    ref = beam_search(bundle.model, torch.from_numpy(hist), 512, 10)  # torch fp32
    np.testing.assert_array_equal(fp32[0], ref.items)
    np.testing.assert_allclose(fp32[1], ref.scores, atol=1e-4)

"""Bad inputs a user can hand the stages: each is one clear user error (or a failed lint or
gate with its reason), never a traceback, and nothing is written. Built in tmp_path from the
tiny pipeline."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onerec_trt.commands.backends import verify_backends
from onerec_trt.errors import UserError
from onerec_trt.lint import lint
from onerec_trt.model.checkpoint import load_model

F = TensorProto.FLOAT


def _model_copy(tiny_pipeline, tmp_path, name="model"):
    folder = tmp_path / name
    shutil.copytree(tiny_pipeline / "model", folder)
    return folder


def _edit_json(path, change):
    data = json.loads(path.read_text())
    data = change(data) or data
    path.write_text(json.dumps(data))


# ---- item 5: model folders ------------------------------------------------------------------

@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[:500], "truncated or not a safetensors file"),
    (lambda raw: os.urandom(5000), "not a safetensors file"),
    (lambda raw: raw[:len(raw) // 2], "is truncated: its tensors need"),
    (lambda raw: b"", "no complete header"),
])
def test_damaged_weights_are_a_user_error(tiny_pipeline, tmp_path, damage, message):
    folder = _model_copy(tiny_pipeline, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(UserError, match=message):
        load_model(folder)


@pytest.mark.parametrize("config, message", [
    ([1, 2], "is not a JSON object"),
    ({"d_model": "16"}, "d_model must be an integer, got '16'"),
    ({"codebook_sizes": "4,4"}, "codebook_sizes must be a non-empty list of integers"),
    ({"dropout": None}, "dropout must be a number"),
    ({"n_heads": 0}, "n_heads must be at least 1"),
    ({"num_items": -1}, "num_items must not be negative"),
])
def test_config_json_of_the_wrong_form_is_a_user_error(tiny_pipeline, tmp_path, config, message):
    folder = _model_copy(tiny_pipeline, tmp_path)
    path = folder / "config.json"
    if isinstance(config, dict):
        _edit_json(path, lambda data: data.update(config))
    else:
        path.write_text(json.dumps(config))
    with pytest.raises(UserError, match=message):
        load_model(folder)


def test_config_sizes_that_disagree_with_the_weights(tiny_pipeline, tmp_path):
    folder = _model_copy(tiny_pipeline, tmp_path)
    _edit_json(folder / "config.json", lambda data: data.update(d_model=32, ffn_hidden=64))
    with pytest.raises(UserError, match=r"does not match config.json: .* is \[\d+(, \d+)*\] in "
                                        r"the weights, \[\d+(, \d+)*\] by the config"):
        load_model(folder)
    _edit_json(folder / "config.json", lambda data: data.update(d_model=16, ffn_hidden=32,
                                                                 context_layers=2))
    with pytest.raises(UserError, match="is missing"):
        load_model(folder)


def test_items_json_must_list_num_items(tiny_pipeline, tmp_path):
    folder = _model_copy(tiny_pipeline, tmp_path)
    vocab = folder / "items.json"
    _edit_json(vocab, lambda data: data.update(num_items=37, tokens=data["tokens"][:37]))
    with pytest.raises(UserError, match="lists 37 items, config.json says num_items 40"):
        load_model(folder)
    _edit_json(vocab, lambda data: data.update(num_items=40))  # the file contradicts itself
    with pytest.raises(UserError, match="says num_items 40 but lists 37 tokens"):
        load_model(folder)


def test_a_broken_model_folder_is_one_line_on_the_cli(tiny_pipeline, tmp_path):
    folder = _model_copy(tiny_pipeline, tmp_path)
    _edit_json(folder / "config.json", lambda data: data.update(d_model=32))
    proc = subprocess.run([sys.executable, "-m", "onerec_trt.cli", "export", "--model",
                           str(folder), "--out", str(tmp_path / "onnx")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "does not match config.json" in proc.stderr
    assert not (tmp_path / "onnx").exists()


def test_a_stage_folder_given_as_the_model_is_named(tiny_pipeline):
    with pytest.raises(UserError, match="is not a model folder \\(written by 'onerec-trt "
                                        "export'\\)"):
        load_model(tiny_pipeline / "onnx")


# ---- item 7: quantize -----------------------------------------------------------------------

def _quantize_opts(root, out, **kw):
    from onerec_trt.quantize import QuantizeOptions

    return QuantizeOptions(model=str(root / "model"), onnx=str(root / "onnx"), out=str(out),
                           calib_users=16, calib_batch=16, **kw)


@pytest.mark.parametrize("folder, message", [
    ("model", "is not an export folder \\(written by 'onerec-trt train'\\)"),
    ("fp8", "is not an export folder \\(written by 'onerec-trt quantize'\\)"),
    ("onnx/reference.bf16.onnx", "takes the export stage's folder, not a file"),
    ("nowhere", "--onnx folder not found"),
])
def test_quantize_names_a_folder_of_the_wrong_kind(tiny_pipeline, tmp_path, folder, message):
    from onerec_trt.quantize import quantize

    opts = _quantize_opts(tiny_pipeline, tmp_path / "fp8")
    opts.onnx = str(tiny_pipeline / folder)
    with pytest.raises(UserError, match=message):
        quantize(opts)
    assert not (tmp_path / "fp8").exists()


@pytest.mark.parametrize("amax", [float("nan"), -1.0, 0.0, float("inf"), "abc", True,
                                  1e-300, 1e300])  # tiny, huge: a float32 scale of 0 or inf
def test_checked_amax_refuses_what_makes_a_bad_scale(amax):
    from onerec_trt.quantize.stage import checked_amax

    assert checked_amax({"a": 2, "b": 0.5}, "f") == {"a": 2.0, "b": 0.5}
    with pytest.raises(UserError, match="every amax must be a finite positive number"):
        checked_amax({"a": 1.0, "b": amax}, "calibration file f")


def test_quantize_refuses_a_calibration_file_with_a_nan_amax(tiny_pipeline, tmp_path):
    from onerec_trt.quantize import quantize

    saved = json.loads((tiny_pipeline / "fp8" / "calibration.json").read_text())
    first = sorted(saved["amax"])[0]
    saved["amax"][first] = float("nan")
    (tmp_path / "cal.json").write_text(json.dumps(saved))  # json writes NaN, and reads it
    opts = _quantize_opts(tiny_pipeline, tmp_path / "fp8", calibration=str(tmp_path / "cal.json"))
    with pytest.raises(UserError, match=f"the amax of {first} is nan"):
        quantize(opts)
    assert not (tmp_path / "fp8").exists()


def test_quantize_refuses_an_npz_as_calibration_histories(tiny_pipeline, tmp_path):
    from onerec_trt.quantize import quantize

    np.savez(tmp_path / "x.npz", history=np.ones((4, 20), np.int64))
    opts = _quantize_opts(tiny_pipeline, tmp_path / "fp8", histories=str(tmp_path / "x.npz"))
    with pytest.raises(UserError, match="is an .npz archive, not a .npy array"):
        quantize(opts)


@pytest.mark.parametrize("options", [{}, {"beam": "10", "topk": 10}, None,
                                     {"beam": 10, "topk": 10, "step": "xyz"}])
def test_quantize_refuses_an_export_json_without_its_options(tiny_pipeline, tmp_path, options):
    from onerec_trt.quantize import quantize

    shutil.copytree(tiny_pipeline / "onnx", tmp_path / "onnx")
    _edit_json(tmp_path / "onnx" / "export.json", lambda data: data.update(options=options))
    opts = _quantize_opts(tiny_pipeline, tmp_path / "fp8")
    opts.onnx = str(tmp_path / "onnx")
    with pytest.raises(UserError, match="does not record the export's options"):
        quantize(opts)


def _qdq(scale_value):
    scale = helper.make_tensor("scale", TensorProto.BFLOAT16, [], [scale_value])
    zp = helper.make_tensor("zp", TensorProto.FLOAT8E4M3FN, [], [0])
    w = helper.make_tensor("w", TensorProto.BFLOAT16, [4, 4], [0.25] * 16)
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["dq"], name="dq"),
             helper.make_node("MatMul", ["dq", "w"], ["y"], name="gemm")]
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info(
        "x", TensorProto.BFLOAT16, [2, 4])], [helper.make_tensor_value_info(
            "y", TensorProto.BFLOAT16, [2, 4])], [scale, zp, w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.5, 0.0])
def test_lint_refuses_non_finite_or_non_positive_scales(value):
    assert lint(_qdq(0.5)).ok
    found = [p for p in lint(_qdq(value)).errors if p.rule == "quant"]
    assert len(found) == 2 and {p.node for p in found} == {"q", "dq"}
    assert "a scale must be finite and positive" in found[0].message


def test_lint_fails_our_fp8_graph_with_a_nan_scale(tiny_pipeline):
    model = onnx.load(str(tiny_pipeline / "fp8" / "fp8.onnx"))
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    scale = next(t for t in model.graph.initializer if t.name == q.input[1])
    dtype = numpy_helper.to_array(scale).dtype
    scale.CopyFrom(numpy_helper.from_array(np.array(np.nan, dtype=dtype), scale.name))
    report = lint(model)
    assert not report.ok and all(p.rule == "quant" for p in report.errors)
    assert any(p.node == q.name and "holds nan" in p.message for p in report.errors)


# ---- issue 28 item 16: quantize's JSON inputs ----------------------------------------------

def test_read_json_refuses_a_file_that_is_not_utf8(tmp_path):
    from onerec_trt.artifacts import json_object, read_json

    (tmp_path / "latin1.json").write_bytes('{"name": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(UserError, match="FP8 policy is not UTF-8 text: .*latin1.json"):
        read_json(tmp_path / "latin1.json", "FP8 policy")
    assert json_object(tmp_path / "latin1.json") == {}  # optional records: as if missing


def _quantize_cli(cli, root, out, *args):
    return cli("quantize", "--model", root / "model", "--onnx", root / "onnx", "--out", out,
               "--calib-users", 16, "--calib-batch", 16, *args)


def _one_line(result, message):
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2


def test_quantize_refuses_a_policy_that_is_not_utf8(tiny_pipeline, tmp_path, cli):
    policy = tmp_path / "policy.json"
    policy.write_bytes(b'{"bf16_layers": ["\xff\xfe"]}')
    _one_line(_quantize_cli(cli, tiny_pipeline, tmp_path / "fp8", "--policy", policy),
              "FP8 policy is not UTF-8 text")
    assert not (tmp_path / "fp8").exists()


@pytest.mark.parametrize("names", [[1, 2], [None], ["heads.0", {"a": 1}]])
def test_quantize_refuses_exclusions_that_are_not_layer_names(tiny_pipeline, tmp_path, cli,
                                                              names):
    (tmp_path / "ex.json").write_text(json.dumps({"exclude": names}))
    _one_line(_quantize_cli(cli, tiny_pipeline, tmp_path / "fp8", "--exclusions",
                            tmp_path / "ex.json"), 'expected {"exclude": [layer names]}')
    assert not (tmp_path / "fp8").exists()


@pytest.mark.parametrize("amax", [1e-300, 1e300])
def test_quantize_refuses_a_calibration_amax_no_float32_scale_holds(tiny_pipeline, tmp_path,
                                                                    cli, amax):
    saved = json.loads((tiny_pipeline / "fp8" / "calibration.json").read_text())
    first = sorted(saved["amax"])[0]
    saved["amax"][first] = amax
    (tmp_path / "cal.json").write_text(json.dumps(saved))
    _one_line(_quantize_cli(cli, tiny_pipeline, tmp_path / "fp8", "--calibration",
                            tmp_path / "cal.json"), f"the amax of {first} is {amax!r}")
    assert not (tmp_path / "fp8").exists()


# ---- item 8: lint and build --print-commands -------------------------------------------------

def test_lint_refuses_an_empty_file(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(UserError, match="is empty \\(0 bytes\\)"):
        lint(tmp_path / "empty.onnx")


def test_lint_names_a_folder_given_as_a_graph(tiny_pipeline):
    with pytest.raises(UserError, match="is a folder, not an ONNX graph\nNote: pass one of its "
                                        "graphs: fp8.cpu.onnx, fp8.onnx"):
        lint(tiny_pipeline / "fp8")


def _graph(nodes, inputs, outputs):
    g = helper.make_graph(nodes, "g", inputs, outputs)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])


def test_lint_fails_a_graph_the_onnx_checker_rejects():
    vi = helper.make_tensor_value_info
    dangling = _graph([helper.make_node("Relu", ["x"], ["z"])], [vi("x", F, [2])],
                      [vi("w", F, [2])])
    [problem] = lint(dangling).errors
    assert problem.rule == "onnx" and "'w' is not an output of any node" in problem.message
    mixed = _graph([helper.make_node("Add", ["x", "y"], ["z"])],
                   [vi("x", F, [2]), vi("y", TensorProto.INT64, [2])], [vi("z", F, [2])])
    [problem] = lint(mixed).errors
    assert problem.rule == "onnx" and "inconsistent type" in problem.message
    empty = _graph([], [vi("x", F, [2])], [vi("x", F, [2])])
    assert [p.message for p in lint(empty).errors] == [
        "the graph has no nodes: there is nothing to build"]


def test_lint_checks_a_graph_with_hard_linked_external_data(tiny_pipeline, tmp_path):
    """onnx.checker refuses a data file with several hard links (how stages share weights):
    the lint checks the structure without reading the weights."""
    model = onnx.load(str(tiny_pipeline / "fp8" / "fp8.onnx"))
    onnx.save(model, str(tmp_path / "g.onnx"), save_as_external_data=True,
              location="g.onnx.data", size_threshold=64)
    os.link(tmp_path / "g.onnx.data", tmp_path / "shared.data")
    report = lint(tmp_path / "g.onnx")
    assert report.ok, report.lines()
    broken = onnx.load(str(tmp_path / "g.onnx"), load_external_data=False)
    broken.graph.output[0].name = "nothing"
    assert [p.rule for p in lint(broken).errors] == ["onnx"]


def test_print_commands_lints_first(tiny_pipeline, tmp_path, caplog):
    from onerec_trt.builder import BuildOptions, build

    good = tiny_pipeline / "fp8" / "fp8.onnx"
    model = onnx.load(str(good))
    model.graph.output[0].name = "nothing"
    onnx.save(model, str(tmp_path / "bad.onnx"))
    caplog.set_level("INFO", logger="onerec_trt")
    report = build(BuildOptions(onnx=[str(good), str(tmp_path / "bad.onnx")],
                                out=str(tmp_path / "eng"), print_commands=True))
    lines = caplog.messages
    assert not report.ok and report.commands is None
    assert any("[onnx]" in line for line in lines) and not any("trtexec" in x for x in lines)
    report = build(BuildOptions(onnx=[str(good)], out=str(tmp_path / "eng"),
                                print_commands=True))
    assert report.ok and f"# lint: {good}: OK for TensorRT" in report.commands
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(UserError, match="is empty"):
        build(BuildOptions(onnx=[str(tmp_path / "empty.onnx")], out=str(tmp_path / "eng"),
                           print_commands=True))


# ---- item 6: verify -------------------------------------------------------------------------

def _verify_opts(root, out, **kw):
    from onerec_trt.verify import VerifyOptions

    graphs = {"reference": str(root / "onnx" / "reference.cpu.onnx"),
              "candidate": str(root / "fp8" / "fp8.cpu.onnx")}
    return VerifyOptions(model=str(root / "model"), users=30, batch=30, out=str(out),
                         bootstrap=50, **{**graphs, **kw})


def test_verify_refuses_a_graph_of_another_history_length(tiny_pipeline, tmp_path):
    """A graph copied without its export.json: the graph's own input says its length."""
    from onerec_trt.verify import verify

    model = onnx.load(str(tiny_pipeline / "fp8" / "fp8.cpu.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 10
    onnx.save(model, str(tmp_path / "h10.onnx"))
    opts = _verify_opts(tiny_pipeline, tmp_path / "v", candidate=str(tmp_path / "h10.onnx"))
    with pytest.raises(UserError, match="takes histories of 10 items, the model 20"):
        verify(opts, *verify_backends(opts))
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize("change, message", [
    ({"history_length": 12}, "takes histories of 12 items"),
    ({"options": {"beam": 10, "topk": 5}}, "returns 5 items per user"),
])
def test_verify_refuses_an_export_of_another_history_length_or_top_k(tiny_pipeline, tmp_path,
                                                                     change, message):
    from onerec_trt.verify import verify

    shutil.copytree(tiny_pipeline / "onnx", tmp_path / "onnx")
    _edit_json(tmp_path / "onnx" / "export.json", lambda data: data.update(change))
    candidate = tmp_path / "onnx" / "fp8.cpu.onnx"
    model = onnx.load(str(tiny_pipeline / "fp8" / "fp8.cpu.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "S"  # export.json decides
    onnx.save(model, str(candidate))
    opts = _verify_opts(tiny_pipeline, tmp_path / "v", candidate=str(candidate))
    with pytest.raises(UserError, match=message):
        verify(opts, *verify_backends(opts))


def test_verify_refuses_an_export_json_without_options(tiny_pipeline, tmp_path):
    from onerec_trt.verify import verify

    shutil.copytree(tiny_pipeline / "onnx", tmp_path / "onnx")
    _edit_json(tmp_path / "onnx" / "export.json", lambda data: data.update(options={}))
    for candidate in ("torch", str(tiny_pipeline / "fp8" / "fp8.cpu.onnx")):
        opts = _verify_opts(tiny_pipeline, tmp_path / "v", candidate=candidate,
                            reference=str(tmp_path / "onnx" / "reference.cpu.onnx"))
        with pytest.raises(UserError, match="does not record the export's options"):
            verify(opts, *verify_backends(opts))


def test_verify_runs_a_graph_copied_without_its_export_json(tiny_pipeline, tmp_path):
    from onerec_trt.verify import verify

    shutil.copy(tiny_pipeline / "fp8" / "fp8.cpu.onnx", tmp_path / "lone.onnx")
    opts = _verify_opts(tiny_pipeline, tmp_path / "v", candidate=str(tmp_path / "lone.onnx"))
    report = verify(opts, *verify_backends(opts))
    assert report.users == 30 and report.gates["finite_scores"]["pass"]
    opts = _verify_opts(tiny_pipeline, tmp_path / "w", reference=str(tmp_path / "lone.onnx"),
                        candidate="torch")
    with pytest.raises(UserError, match="needs an exported reference graph"):
        verify(opts, *verify_backends(opts))


def test_verify_fails_a_graph_that_computes_nan_with_a_reason(tiny_pipeline, tmp_path):
    from onerec_trt.verify import verify

    model = onnx.load(str(tiny_pipeline / "onnx" / "reference.cpu.onnx"))
    emb = next(t for t in model.graph.initializer if t.name.endswith("item_emb.weight"))
    values = numpy_helper.to_array(emb).copy()
    values[:] = np.nan
    emb.CopyFrom(numpy_helper.from_array(values, emb.name))
    onnx.save(model, str(tmp_path / "nan.onnx"))
    opts = _verify_opts(tiny_pipeline, tmp_path / "v", candidate=str(tmp_path / "nan.onnx"))
    report = verify(opts, *verify_backends(opts))
    gate = report.gates["finite_scores"]
    assert not report.passed and not gate["pass"] and gate["value"] == 30
    assert "NaN scores for 30 candidate and 0 reference users" in gate["reason"]
    assert gate["reason"] in (tmp_path / "v" / "verify.md").read_text()

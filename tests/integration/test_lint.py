"""The TensorRT lint: our real graphs pass; graphs broken on purpose fail with the right rule,
node and message (no TensorRT involved anywhere)."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onerec_trt.lint import lint
from onerec_trt.lint.optable import load_table

F, BF16, I64, FP8 = TensorProto.FLOAT, TensorProto.BFLOAT16, TensorProto.INT64, \
    TensorProto.FLOAT8E4M3FN


def graph(nodes, inputs, outputs, inits=(), opset=19, domains=()):
    g = helper.make_graph(nodes, "broken", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset),
                                               *(helper.make_opsetid(d, 1) for d in domains)])


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def problems(model, rule=None, severity="error"):
    report = lint(model)
    return [p for p in report.problems
            if p.severity == severity and (rule is None or p.rule == rule)]


def only(model, rule, severity="error"):
    found = problems(model, rule, severity)
    assert len(found) == 1, [str(p) for p in lint(model).problems]
    return found[0]


# ---- our graphs pass ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["onnx/reference.bf16.onnx", "fp8/fp8.onnx",
                                  "onnx/reference.cpu.onnx"])
def test_our_graphs_pass(tiny_pipeline, name):
    report = lint(tiny_pipeline / name)
    assert report.ok, report.lines()
    assert report.nodes > 1000 and report.tensorrt_version == "10.15"
    assert not report.warnings, report.lines()  # every FP8 DQ reaches its GEMM


def test_the_cpu_fp8_rendering_is_flagged_as_unfused(tiny_pipeline):
    """fp8.cpu.onnx rounds each DQ output through Casts (for ONNX Runtime): still valid, but the
    lint sees that TensorRT could not fuse those Q/DQ pairs into FP8 GEMMs."""
    report = lint(tiny_pipeline / "fp8" / "fp8.cpu.onnx")
    assert report.ok
    assert report.warnings and all(p.rule == "quant" and "unfused" in p.message
                                   for p in report.warnings)


def test_the_table_is_data_with_its_source():
    table = load_table()
    assert "onnx-tensorrt" in table.source and "10.15" in table.source
    assert (table.opset_min, table.opset_max) == (9, 24)
    assert table.support("TopK").max_k == 3840
    assert "INT64" in table.support("Clip").types  # corrected from the importer, see the JSON
    assert not table.support("Unique").supported
    assert "FLOAT8E4M3FN" in table.quantized_types and "FLOAT8E5M2" not in table.known_types


# ---- each rule, broken on purpose ---------------------------------------------------------

def test_topk_above_3840_in_our_real_graph(tiny_pipeline):
    model = onnx.load(str(tiny_pipeline / "onnx" / "reference.bf16.onnx"))
    topk = [n for n in model.graph.node if n.op_type == "TopK"][1]
    k = next(t for t in model.graph.initializer if t.name == topk.input[1])  # folded K
    k.CopyFrom(numpy_helper.from_array(np.array([4000], np.int64), k.name))
    found = only(model, "topk")
    assert found.node == topk.name and "K = 4000" in found.message and "3840" in found.message


def test_topk_at_3840_passes_and_a_runtime_k_warns():
    k = numpy_helper.from_array(np.array([3840], np.int64), "k")
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], name="top", axis=1)
    model = graph([node], [vi("x", F, ["N", 5000])], [vi("v", F, None), vi("i", I64, None)], [k])
    assert lint(model).ok and not lint(model).warnings
    model = graph([node], [vi("x", F, ["N", 5000]), vi("k", I64, [1])],
                  [vi("v", F, None), vi("i", I64, None)])
    assert "not a constant" in only(model, "topk", "warning").message


def test_topk_must_be_sorted():
    k = numpy_helper.from_array(np.array([4], np.int64), "k")
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], name="top", sorted=0)
    model = graph([node], [vi("x", F, [2, 8])], [vi("v", F, None), vi("i", I64, None)], [k])
    assert "sorted = 0" in only(model, "op").message


def test_unsupported_and_unknown_ops():
    model = graph([helper.make_node("Unique", ["x"], ["y"], name="uniq")],
                  [vi("x", F, [4])], [vi("y", F, None)])
    found = only(model, "op")
    assert found.node == "uniq" and "does not support Unique" in found.message
    model = graph([helper.make_node("NotAnOp", ["x"], ["y"], name="odd")],
                  [vi("x", F, [4])], [vi("y", F, None)])
    assert "not in TensorRT 10.15's ONNX operator table" in only(model, "op").message


def test_op_on_a_dtype_the_table_does_not_list():
    axis = numpy_helper.from_array(np.array(0, np.int64), "axis")
    model = graph([helper.make_node("CumSum", ["x", "axis"], ["y"], name="cumsum")],
                  [vi("x", I64, [4])], [vi("y", I64, [4])], [axis])
    found = only(model, "op")
    assert found.node == "cumsum" and "CumSum on INT64" in found.message


def test_constant_inputs_and_extra_outputs():
    model = graph([helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="mean")],
                  [vi("x", F, [2, 3]), vi("axes", I64, [1])], [vi("y", F, None)], opset=18)
    assert "must be a build-time constant" in only(model, "op").message
    scale = numpy_helper.from_array(np.ones(3, np.float32), "s")
    ln = helper.make_node("LayerNormalization", ["x", "s"], ["y", "mean"], name="ln")
    model = graph([ln], [vi("x", F, [2, 3])], [vi("y", F, None), vi("mean", F, None)], [scale])
    assert "only the first 1 output" in only(model, "op").message


def test_opset_outside_the_table():
    model = graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", F, [2])],
                  [vi("y", F, [2])], opset=8)
    assert "opset 8 is outside" in only(model, "opset").message


def test_dtypes_tensorrt_refuses():
    model = graph([helper.make_node("Cast", ["x"], ["y"], name="to16", to=TensorProto.INT16)],
                  [vi("x", F, [2])], [vi("y", TensorProto.INT16, [2])])
    found = only(model, "dtype")
    assert found.node == "to16" and "INT16, a type TensorRT does not have" in found.message
    cast = helper.make_node("Cast", ["x"], ["u"], name="to_u8", to=TensorProto.UINT8)
    back = helper.make_node("Cast", ["u"], ["y"], name="back", to=F)
    model = graph([cast, back], [vi("x", F, [2])], [vi("y", F, [2])])
    assert "only as a network input or output" in only(model, "dtype").message
    model = graph([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                  [vi("x", TensorProto.DOUBLE, [2])], [vi("y", TensorProto.DOUBLE, [2])])
    found = problems(model, severity="warning")
    assert lint(model).ok and len(found) == 2  # x and y, each cast down to FLOAT
    assert all(p.rule == "dtype" and "casts it down" in p.message for p in found)


def qdq_model(between=None, zero=0.0, zero_type=FP8, scale_shape=(), consumer="MatMul"):
    """x[bf16] -> Q -> (between) -> DQ -> consumer(w); the usual ModelOpt activation path."""
    scale = helper.make_tensor("scale", BF16, list(scale_shape),
                               [0.5] * int(np.prod(scale_shape)))
    zp = helper.make_tensor("zp", zero_type, [], [zero])
    w = helper.make_tensor("w", BF16, [4, 4], [0.25] * 16)
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"], name="q")]
    data = "q"
    if between:
        nodes.append(helper.make_node(between, ["q"], ["q2"], name="between"))
        data = "q2"
    nodes.append(helper.make_node("DequantizeLinear", [data, "scale", "zp"], ["dq"], name="dq"))
    nodes.append(helper.make_node(consumer, ["dq", "w"], ["y"], name="gemm"))
    return graph(nodes, [vi("x", BF16, [2, 4])], [vi("y", BF16, None)], [scale, zp, w])


def test_fp8_qdq_the_way_modelopt_writes_it_passes():
    assert lint(qdq_model()).ok and not lint(qdq_model()).warnings
    assert lint(qdq_model(between="Transpose")).ok  # Q -> Transpose -> DQ: TensorRT accepts it


def test_fp8_data_into_anything_but_dq_fails():
    found = [p for p in problems(qdq_model(between="Relu"), "quant")]
    assert found and found[0].node == "between"
    assert "FLOAT8E4M3FN tensor 'q' feeds Relu" in found[0].message


def test_cast_to_fp8_fails():
    cast = helper.make_node("Cast", ["x"], ["f8"], name="cast8", to=FP8)
    dq = helper.make_node("DequantizeLinear", ["f8", "s"], ["y"], name="dq")
    s = helper.make_tensor("s", F, [], [1.0])
    model = graph([cast, dq], [vi("x", F, [2])], [vi("y", F, [2])], [s])
    found = only(model, "quant")
    assert found.node == "cast8" and "rejects casts" in found.message


def test_fp8_zero_point_must_be_zero_and_e4m3():
    found = problems(qdq_model(zero=1.0), "quant")
    assert {p.node for p in found} == {"q", "dq"}
    assert all("only a zero point of 0" in p.message for p in found)
    found = problems(qdq_model(zero_type=TensorProto.FLOAT8E5M2), "dtype")
    assert found and "FLOAT8E5M2, a type TensorRT does not have" in found[0].message


def test_per_channel_scale_of_the_wrong_size():
    found = problems(qdq_model(scale_shape=(3,)), "quant")
    assert found and "3 values for axis 1 of size 4" in found[0].message


def weight_model(stored, axis, transpose=False):
    """x[2,4] @ DQ(FP8 weight): stored [in, out] = [4, 3], or [out, in] = [3, 4] with a
    Transpose after the DQ (as ONNX Runtime's rendering has it); a 1-D scale along ``axis``."""
    size = stored[axis]
    w = helper.make_tensor("w", FP8, list(stored), [1.0] * int(np.prod(stored)))
    scale = helper.make_tensor("ws", BF16, [size], [0.5] * size)
    zp = helper.make_tensor("wz", FP8, [size], [0.0] * size)
    nodes = [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], name="dq",
                              axis=axis)]
    if transpose:
        nodes.append(helper.make_node("Transpose", ["wd"], ["wt"], name="t", perm=[1, 0]))
    nodes.append(helper.make_node("MatMul", ["x", "wt" if transpose else "wd"], ["y"],
                                  name="gemm"))
    return graph(nodes, [vi("x", BF16, [2, 4])], [vi("y", BF16, None)], [w, scale, zp])


def test_per_channel_weight_scales_along_the_output_features_pass():
    """onnx-tensorrt's per-channel form: a 1-D scale along N of the GEMM's weight."""
    for model in (weight_model((4, 3), 1), weight_model((3, 4), 0, transpose=True)):
        report = lint(model)
        assert report.ok and not report.warnings, [str(p) for p in report.problems]


def test_per_channel_scale_along_the_reduction_axis_is_a_warning():
    for model in (weight_model((4, 3), 0), weight_model((3, 4), 1, transpose=True)):
        assert lint(model).ok
        found = only(model, "quant", "warning")
        assert found.node == "dq" and "reduction axis of MatMul 'gemm'" in found.message


def test_dq_that_reaches_no_gemm_is_a_warning():
    model = qdq_model(consumer="Add")
    assert lint(model).ok
    found = only(model, "quant", "warning")
    assert found.node == "dq" and "unfused" in found.message


# ---- custom-domain nodes and our plugins -------------------------------------------------

def plugin_spec():
    """A plugin of the contract that has attributes (the contract may still change)."""
    from onerec_trt.plugins.spec import PLUGINS

    return next(p for p in PLUGINS.values() if p.attributes)


def plugin_node(**overrides):
    from onerec_trt.plugins.spec import NAMESPACE

    spec = plugin_spec()
    attrs = {"plugin_namespace": NAMESPACE, **{a: 4 for a in spec.attributes}, **overrides}
    attrs = {k: v for k, v in attrs.items() if v is not None}
    node = helper.make_node(spec.name, [t.name for t in spec.inputs],
                            [t.name for t in spec.outputs], name="plugin0", domain=NAMESPACE,
                            **attrs)
    inputs = [vi(t.name, F if t.dtypes[0] == "float32" else I64, None) for t in spec.inputs]
    outputs = [vi(t.name, F if t.dtypes[0] == "float32" else I64, None) for t in spec.outputs]
    return graph([node], inputs, outputs, domains=[NAMESPACE])


def test_a_well_formed_plugin_node_passes():
    report = lint(plugin_node())
    assert report.ok, report.lines()


def test_plugin_node_without_namespace_or_attribute():
    found = problems(plugin_node(plugin_namespace=None), "plugin")
    assert len(found) == 1 and "plugin_namespace is None" in found[0].message
    for name in plugin_spec().attributes:
        found = problems(plugin_node(**{name: None}), "plugin")
        assert len(found) == 1 and f"attribute '{name}' is missing" in found[0].message
        assert found[0].node == "plugin0"
    found = problems(plugin_node(**{next(iter(plugin_spec().attributes)): 2**40}), "plugin")
    assert len(found) == 1 and "does not fit int32" in found[0].message


def test_unknown_custom_op():
    node = helper.make_node("Swish", ["x"], ["y"], name="swish", domain="com.example")
    model = graph([node], [vi("x", F, [2])], [vi("y", F, None)], domains=["com.example"])
    found = only(model, "plugin")
    assert found.node == "swish" and "com.example::Swish matches no known plugin" in \
        found.message


# ---- the CLI ----------------------------------------------------------------------------

def cli(*args):
    return subprocess.run([sys.executable, "-m", "onerec_trt.cli", "lint", *map(str, args)],
                          capture_output=True, text=True, env={"OMP_NUM_THREADS": "1",
                                                               "PATH": "/usr/bin:/bin"})


def test_cli_exit_codes(tiny_pipeline, tmp_path):
    good = tiny_pipeline / "fp8" / "fp8.onnx"
    proc = cli(good)
    assert proc.returncode == 0 and "OK for TensorRT 10.15" in proc.stdout
    bad = tmp_path / "bad.onnx"
    onnx.save(qdq_model(between="Relu"), str(bad))
    proc = cli(good, bad)
    assert proc.returncode == 1
    assert "node 'between' (Relu)" in proc.stdout and "FAILED" in proc.stdout
    proc = cli(tmp_path / "missing.onnx")
    assert proc.returncode == 2 and "ONNX graph not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_plugin_node_with_wrong_arity_or_dtype():
    from onerec_trt.plugins.spec import NAMESPACE

    spec = plugin_spec()
    model = plugin_node()
    model.graph.node[0].input.append("extra")
    found = problems(model, "plugin")
    assert len(found) == 1 and f"the plugin takes {len(spec.inputs)}" in found[0].message
    model = plugin_node()
    int_input = next(t for t in spec.inputs if t.dtypes == ("int64",))
    for value in model.graph.input:
        if value.name == int_input.name:
            value.type.tensor_type.elem_type = BF16
    found = problems(model, "plugin")
    assert len(found) == 1 and f"input '{int_input.name}'" in found[0].message
    assert "is bfloat16, the plugin takes int64" in found[0].message
    assert model.graph.node[0].domain == NAMESPACE


def test_quantized_network_io_and_scale_rank():
    scale = helper.make_tensor("s", F, [], [1.0])
    zp = helper.make_tensor("zp", FP8, [], [0.0])
    q = helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="q_out")
    model = graph([q], [vi("x", F, [2, 4])], [vi("q", FP8, [2, 4])], [scale, zp])
    found = only(model, "quant")
    assert found.node == "q_out" and "network input/output 'q' is FLOAT8E4M3FN" in found.message
    scale = helper.make_tensor("s", F, [1, 1, 4], [1.0] * 4)
    dq = helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dq")
    q = helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="q")
    model = graph([q, dq], [vi("x", F, [2, 4])], [vi("y", F, None)], [scale, zp])
    found = problems(model, "quant")
    assert found and "of rank 3 on data of rank 2" in found[0].message


def test_zero_point_must_be_a_constant():
    scale = helper.make_tensor("s", F, [], [1.0])
    q = helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="q")
    dq = helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dq")
    mm = helper.make_node("MatMul", ["y", "x"], ["z"], name="mm")
    model = graph([q, dq, mm], [vi("x", F, [4, 4]), vi("zp", FP8, [])], [vi("z", F, None)],
                  [scale])
    found = [p for p in problems(model, "quant") if "not a constant" in p.message]
    assert {p.node for p in found} == {"q", "dq"}


def test_ops_inside_if_branches_are_checked():
    axes = helper.make_node("Constant", [], ["axes"], name="axes",
                            value=numpy_helper.from_array(np.array([0], np.int64)))
    mean = helper.make_node("ReduceMean", ["x", "axes"], ["m"], name="mean")
    then = helper.make_graph([axes, mean], "then", [], [vi("m", F, None)])
    other = helper.make_graph([helper.make_node("Unique", ["x"], ["u"], name="uniq")], "else",
                              [], [vi("u", F, None)])
    node = helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then,
                            else_branch=other)
    model = graph([node], [vi("c", TensorProto.BOOL, []), vi("x", F, [3])], [vi("y", F, None)])
    found = only(model, "op")  # the branch's ReduceMean has constant axes: no complaint
    assert found.node == "branch/else_branch/uniq" and "Unique" in found.message


@pytest.mark.parametrize("name", ["onnx/reference.bf16.onnx", "fp8/fp8.onnx"])
def test_plugin_bearing_variants_pass(tiny_pipeline, name):
    """The plugins package's swap (beam steps -> plugin nodes) on our real graphs: the plugin
    nodes are checked against the contract and pass; breaking one fails."""
    swap = pytest.importorskip("onerec_trt.plugins.graph_swap",
                               reason="the plugin swap is not here")
    from onerec_trt.lint.plugins import graph_plugins
    from onerec_trt.plugins.spec import NAMESPACE, PLUGINS

    model = swap.swap_graph(onnx.load(str(tiny_pipeline / name))).model
    used = graph_plugins(model)
    assert used and {p["name"] for p in used} <= set(PLUGINS)
    assert all(p["namespace"] == NAMESPACE for p in used)
    report = lint(model)
    assert report.ok and not report.warnings, report.lines()
    node = next(n for n in model.graph.node if n.domain == NAMESPACE)
    kept = [a for a in node.attribute if a.name != "plugin_namespace"]
    del node.attribute[:]
    node.attribute.extend(kept)
    found = only(model, "plugin")
    assert found.node == node.name and "plugin_namespace is None" in found.message


def test_plugin_version_must_be_the_registered_one():
    """TensorRT's parser looks the creator up by (op_type, plugin_version, plugin_namespace);
    a node whose plugin_version is not the registered version finds no creator."""
    from onerec_trt.lint.plugins import graph_plugins
    from onerec_trt.plugins.spec import PLUGIN_VERSION

    assert PLUGIN_VERSION == "1"

    def plugin_node(**overrides):  # the helper above, with shapes on every tensor
        model = globals()["plugin_node"](**overrides)
        for value in [*model.graph.input, *model.graph.output]:
            value.type.tensor_type.shape.dim.add().dim_value = 2
        return model

    ok = plugin_node(plugin_version=PLUGIN_VERSION)
    assert lint(ok).ok and graph_plugins(ok)[0]["version"] == "1"
    wrong = plugin_node(plugin_version="2")
    found = only(wrong, "plugin")
    assert found.node == "plugin0" and "plugin_version is '2', the registered plugin is " \
                                      "version '1'" in found.message
    assert graph_plugins(wrong)[0]["version"] == "2"  # what the build looks the creator up by
    found = only(plugin_node(plugin_version=1), "plugin")  # an INT: the parser wants a STRING
    assert "plugin_version is of type INT" in found.message

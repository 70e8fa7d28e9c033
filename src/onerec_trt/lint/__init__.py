"""The TensorRT lint: checks an ONNX graph against TensorRT's documented ONNX support, without
TensorRT.

Rules (each problem names its node):
- ``onnx``: ``onnx.checker`` (full, with strict type and shape inference) accepts the graph,
  and it has nodes (weights in external data are not read: ``graphs.check_structure``); a
  shape conflict alone is a warning, a quantized type an op schema lacks is ``quant``'s;
- ``opset``: the graph's ONNX opset is in the range the table covers;
- ``op``: every standard op is in the table as supported, on a dtype the table lists, with the
  attributes, outputs and constant inputs its restrictions ask for;
- ``topk``: TopK's K is a constant <= 3840;
- ``dtype``: no tensor has a type TensorRT lacks (DOUBLE is cast down: a warning; UINT8 only as
  network input or output);
- ``quant``: INT8/INT4/FP8/FP4 data only between QuantizeLinear and DequantizeLinear, zero
  points of 0, scale shapes TensorRT accepts; a DQ that reaches no GEMM is a warning (unfused);
- ``plugin``: every custom-domain node is one of our plugins (``onerec_trt.plugins.spec``) with
  what TensorRT's parser needs to find and build it;
- ``size`` (with ``max_batch``, as the build passes it): no tensor of 2^31 elements or more at
  the profile's largest batch (``sizes.py``);
- ``numerics`` and ``precision`` (warnings): LogSoftmax/ReduceLogSumExp, which TensorRT imports
  without a max shift, and fp32 GEMMs in a bf16/FP8 graph (``numerics.py``).

Errors fail the lint (exit 1); warnings are printed only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from onerec_trt.errors import user_error
from onerec_trt.lint.graph_index import STANDARD_DOMAINS, GraphIndex, index_graph, walk_nodes
from onerec_trt.lint.optable import OpTable, load_table

__all__ = ["lint", "LintReport", "Problem"]

# how the checker names quantized element types ("tensor(float8e4m3fn)", "tensor(int4)")
QUANTIZED_TYPE = re.compile(r"tensor\((float8\w*|u?int4|float4\w*)\)")
TYPE_WORD = re.compile(r"\btype\b")


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" or "warning"
    rule: str
    message: str
    node: str | None = None
    op: str | None = None

    def __str__(self) -> str:
        where = f"node '{self.node}' ({self.op}): " if self.node is not None else ""
        return f"{self.severity}: [{self.rule}] {where}{self.message}"


@dataclass
class LintReport:
    path: str
    nodes: int
    tensorrt_version: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        verdict = "OK" if self.ok else "FAILED"
        return (f"{self.path}: {verdict} for TensorRT {self.tensorrt_version} "
                f"({self.nodes} nodes, {len(self.errors)} errors, "
                f"{len(self.warnings)} warnings)")

    def lines(self) -> list[str]:
        return [f"{self.path}: {p}" for p in self.problems] + [self.summary()]


class Collector:
    """Gathers problems; rules call ``error``/``warning`` with the node they concern."""

    def __init__(self):
        self.problems: list[Problem] = []

    def error(self, rule: str, message: str, node: str | None = None, op: str | None = None):
        self.problems.append(Problem("error", rule, message, node, op))

    def warning(self, rule: str, message: str, node: str | None = None, op: str | None = None):
        self.problems.append(Problem("warning", rule, message, node, op))


def load_graph(path: str | Path) -> onnx.ModelProto:
    """A graph file without its external data; a user error for a missing, empty or foreign
    file (protobuf parses an empty file, and some random bytes, as an empty model)."""
    path = Path(path)
    if path.is_dir():
        graphs = sorted(p.name for p in path.glob("*.onnx"))
        raise user_error(f"{path} is a folder, not an ONNX graph",
                         f"pass one of its graphs: {', '.join(graphs)}" if graphs else
                         "pass a .onnx file")
    if not path.is_file():
        raise user_error(f"ONNX graph not found: {path}")
    if path.stat().st_size == 0:
        raise user_error(f"{path} is empty (0 bytes), not an ONNX model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise user_error(f"{path} is not an ONNX model: {str(exc).splitlines()[0]}") from None
    if not model.HasField("graph") or not (model.graph.node or model.graph.output):
        raise user_error(f"{path} is not an ONNX model: it holds no graph")
    return model


def lint(graph: str | Path | onnx.ModelProto, table: OpTable | None = None,
         max_batch: int | None = None) -> LintReport:
    """Lint a graph (a path or a loaded model) against TensorRT's documented ONNX support;
    ``max_batch``: also check every tensor's size with the batch axis at that value."""
    from onerec_trt.lint.numerics import check_fp32_gemms, check_unstable_ops
    from onerec_trt.lint.plugins import check_plugins
    from onerec_trt.lint.quant import check_quantization
    from onerec_trt.lint.sizes import check_sizes

    table = table or load_table()
    model = graph if isinstance(graph, onnx.ModelProto) else load_graph(graph)
    index = index_graph(model)
    out = Collector()
    check_onnx(model, out)
    if index.inference_error:
        out.warning("dtype", f"ONNX shape inference failed ({index.inference_error}); "
                             "dtype checks use the types the graph declares")
    check_opset(model, table, out)
    check_ops(model, index, table, out)
    check_topk(index, table, out)
    check_dtypes(index, table, out)
    check_quantization(index, table, out)
    check_plugins(model, index, out)
    check_unstable_ops(index, out)
    check_fp32_gemms(index, out)
    if max_batch is not None:
        check_sizes(model, max_batch, out)
    name = str(graph) if not isinstance(graph, onnx.ModelProto) else (model.graph.name or "graph")
    return LintReport(name, len(model.graph.node), table.tensorrt_version, out.problems)


def check_onnx(model: onnx.ModelProto, out: Collector) -> None:
    """What TensorRT's parser assumes: a graph ``onnx.checker`` accepts, with nodes."""
    from onerec_trt.graphs import check_structure

    try:
        check_structure(model)
    except onnx.checker.ValidationError as exc:
        out.error("onnx", f"onnx.checker rejects the graph: {_first_line(exc)}")
    except onnx.shape_inference.InferenceError as exc:
        message = _first_line(exc)
        if QUANTIZED_TYPE.search(message):
            pass  # an op schema of the opset lacks FP8/INT4/FP4, which TensorRT runs between Q
            # and DQ anyway: check_quantization judges where quantized data may go
        elif TYPE_WORD.search(message):  # "inconsistent type", "unsupported type" (not op_type)
            out.error("onnx", f"onnx.checker rejects the graph's types: {message}")
        else:
            out.warning("onnx", f"ONNX shape inference finds a conflict: {message} (TensorRT "
                                "fails to build if the shapes meet at run time)")
    if not model.graph.node:
        out.error("onnx", "the graph has no nodes: there is nothing to build")


def _first_line(exc: Exception) -> str:
    first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return first[:300]


def check_opset(model: onnx.ModelProto, table: OpTable, out: Collector) -> None:
    for opset in model.opset_import:
        if opset.domain in STANDARD_DOMAINS and not (
                table.opset_min <= opset.version <= table.opset_max):
            out.error("opset", f"ONNX opset {opset.version} is outside TensorRT "
                               f"{table.tensorrt_version}'s range {table.opset_min}-"
                               f"{table.opset_max}")


def _checked_tensors(node: onnx.NodeProto, table: OpTable) -> list[str]:
    picks = table.type_input.get(node.op_type, [0])
    names = []
    for pick in picks:
        if pick == "out0":
            names.append(node.output[0] if node.output else "")
        elif pick < len(node.input):
            names.append(node.input[pick])
    return [n for n in names if n]


def check_ops(model: onnx.ModelProto, index: GraphIndex, table: OpTable, out: Collector) -> None:
    for label, node in walk_nodes(model.graph):
        if node.domain not in STANDARD_DOMAINS:
            continue  # custom domains: check_plugins
        op = table.support(node.op_type)
        if op is None:
            out.error("op", f"{node.op_type} is not in TensorRT {table.tensorrt_version}'s ONNX "
                            "operator table", label, node.op_type)
            continue
        if not op.supported:
            note = f" ({op.restrictions})" if op.restrictions else ""
            out.error("op", f"TensorRT {table.tensorrt_version} does not support "
                            f"{node.op_type}{note}", label, node.op_type)
            continue
        _check_op_types(label, node, op, index, table, out)
        _check_attributes(label, node, table, out)
        _check_outputs_and_constants(label, node, index, table, out)


def _check_op_types(label, node, op, index: GraphIndex, table: OpTable, out: Collector) -> None:
    for name in _checked_tensors(node, table):
        dtype = index.types.get(name)
        if dtype is None or dtype not in table.known_types or dtype in table.cast_down_types:
            continue  # unknown, a type TensorRT lacks, or DOUBLE (all: check_dtypes)
        if dtype in table.quantized_types and node.op_type != "DequantizeLinear":
            continue  # quantized data outside Q/DQ is check_quantization's
        if dtype not in op.types:
            listed = ", ".join(sorted(op.types))
            out.error("op", f"{node.op_type} on {dtype} ('{name}'): TensorRT "
                            f"{table.tensorrt_version} supports it on {listed}", label,
                      node.op_type)


def _attribute(node: onnx.NodeProto, name: str):
    for attr in node.attribute:
        if attr.name == name:
            value = onnx.helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return None


def _check_attributes(label, node, table: OpTable, out: Collector) -> None:
    for rule in table.attribute_rules:
        if rule["op"] != node.op_type:
            continue
        value = _attribute(node, rule["attribute"])
        value = rule["default"] if value is None else value
        if value not in rule["allowed"]:
            out.error("op", f"{rule['attribute']} = {value!r}: {rule['why']}", label,
                      node.op_type)


def _check_outputs_and_constants(label, node, index: GraphIndex, table: OpTable,
                                 out: Collector) -> None:
    limit = table.max_outputs.get(node.op_type)
    if limit is not None:
        used = [o for o in node.output[limit:] if o and (o in index.consumers or
                                                         o in index.outputs)]
        if used:
            out.error("op", f"TensorRT produces only the first {limit} output(s) of "
                            f"{node.op_type}; '{used[0]}' is used", label, node.op_type)
    for position in table.constant_inputs.get(node.op_type, []):
        if position < len(node.input) and node.input[position] and \
                not index.is_constant(node.input[position]):
            out.error("op", f"input {position} ('{node.input[position]}') must be a build-time "
                            "constant (an initializer or a Constant node)", label, node.op_type)


def check_topk(index: GraphIndex, table: OpTable, out: Collector) -> None:
    limit = table.support("TopK").max_k
    for i, node in enumerate(index.nodes):
        if node.op_type != "TopK" or node.domain not in STANDARD_DOMAINS:
            continue
        if len(node.input) > 1:
            k_name = node.input[1]
            value = index.value(k_name)
            if value is None:
                out.warning("topk", f"K ('{k_name}') is not a constant: TensorRT fails at run "
                                    f"time if it exceeds {limit}", index.label(i), "TopK")
                continue
            k = int(value.reshape(-1)[0])
        else:  # opset < 10: K is an attribute
            k = int(_attribute(node, "k") or 0)
        if k > limit:
            out.error("topk", f"K = {k} is above TensorRT's TopK limit of {limit} "
                              "(K is the beam width in our graphs)", index.label(i), "TopK")


def check_dtypes(index: GraphIndex, table: OpTable, out: Collector) -> None:
    io = set(index.inputs) | set(index.outputs)
    for name, dtype in sorted(index.types.items()):
        where = _where(index, name)
        if dtype not in table.known_types:
            out.error("dtype", f"tensor '{name}' is {dtype}, a type TensorRT does not have", *where)
        elif dtype in table.cast_down_types:
            out.warning("dtype", f"tensor '{name}' is {dtype}: TensorRT casts it down to FLOAT",
                        *where)
        elif dtype in table.io_only_types and name not in io:
            out.error("dtype", f"tensor '{name}' is {dtype}: TensorRT supports {dtype} only as "
                               "a network input or output", *where)


def _where(index: GraphIndex, name: str) -> tuple[str | None, str | None]:
    i = index.producer.get(name)
    if i is not None:
        return index.label(i), index.nodes[i].op_type
    users = index.consumers.get(name)
    if users:
        return index.label(users[0]), index.nodes[users[0]].op_type
    return None, None

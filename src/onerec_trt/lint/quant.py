"""Lint rules for quantized data (FP8 here, INT8/INT4/FP4 alike): TensorRT reaches these types
only through QuantizeLinear/DequantizeLinear, with zero points of 0 and the scale shapes its
importer accepts (scalar, 1-D per-channel along ``axis``, same-rank block); a Q/DQ pair it
cannot fuse into a GEMM still runs, but not in FP8 (a per-channel scale along a GEMM's
reduction axis is such a pair)."""

from __future__ import annotations

import numpy as np
import onnx

from onerec_trt.lint.graph_index import STANDARD_DOMAINS, GraphIndex
from onerec_trt.lint.optable import OpTable

Q_OPS = ("QuantizeLinear", "TRT_FP8QuantizeLinear")
DQ_OPS = ("DequantizeLinear", "TRT_FP8DequantizeLinear")
QDQ_DOMAINS = (*STANDARD_DOMAINS, "trt")  # ModelOpt's raw torch export: trt::TRT_FP8*


def check_quantization(index: GraphIndex, table: OpTable, out) -> None:
    _check_quantized_tensors(index, table, out)
    for i, node in enumerate(index.nodes):
        if node.domain not in QDQ_DOMAINS or node.op_type not in Q_OPS + DQ_OPS:
            continue
        _check_zero_point(i, node, index, out)
        _check_scale_shape(i, node, index, out)
        _check_scale_values(i, node, index, out)
        if node.op_type in DQ_OPS:
            _check_fusion(i, node, index, table, out)
            _check_channel_axis(i, node, index, out)


def _allowed_consumer(node: onnx.NodeProto, position: int, passthrough) -> bool:
    if node.op_type in DQ_OPS:
        return position in (0, 2)  # the data, or the zero point
    if node.op_type in Q_OPS:
        return position == 2  # a zero point of the quantized type
    return node.op_type in passthrough and position == 0


def _check_quantized_tensors(index: GraphIndex, table: OpTable, out) -> None:
    passthrough = set(table.quantization["passthrough_ops"])
    io = set(index.inputs) | set(index.outputs)
    for name, dtype in sorted(index.types.items()):
        if dtype not in table.quantized_types:
            continue
        producer = index.producer.get(name)
        label = index.label(producer) if producer is not None else None
        op = index.nodes[producer].op_type if producer is not None else None
        if name in io:
            out.error("quant", f"network input/output '{name}' is {dtype}: TensorRT reaches "
                               f"{dtype} only through QuantizeLinear/DequantizeLinear", label, op)
            continue
        if producer is not None and op not in Q_OPS + ("Constant",) and op not in passthrough:
            hint = " (TensorRT rejects casts to quantized types: use QuantizeLinear)" \
                if op in ("Cast", "CastLike") else ""
            out.error("quant", f"{op} produces {dtype} tensor '{name}'{hint}", label, op)
        for j, user in index.consumer_nodes(name):
            positions = [p for p, x in enumerate(user.input) if x == name]
            if not all(_allowed_consumer(user, p, passthrough) for p in positions):
                allowed = ", ".join(sorted(passthrough))
                out.error("quant", f"{dtype} tensor '{name}' feeds {user.op_type}: TensorRT takes "
                                   f"{dtype} data only into DequantizeLinear (or {allowed} "
                                   "between Q and DQ)", index.label(j), user.op_type)


def _check_zero_point(i: int, node: onnx.NodeProto, index: GraphIndex, out) -> None:
    if len(node.input) < 3 or not node.input[2]:
        return
    name = node.input[2]
    if not index.is_constant(name):
        out.error("quant", f"zero point '{name}' is not a constant: TensorRT needs a zero "
                           "point of 0", index.label(i), node.op_type)
        return
    value = index.value(name)
    if value is not None and np.any(value.astype(np.float32) != 0):
        out.error("quant", f"zero point '{name}' is {value.reshape(-1)[:4].tolist()}: TensorRT "
                           "supports only a zero point of 0 (symmetric quantization)",
                  index.label(i), node.op_type)


def _check_scale_values(i: int, node: onnx.NodeProto, index: GraphIndex, out) -> None:
    """A constant scale must be finite and positive: a NaN, infinite, zero or negative scale
    (a damaged calibration) builds, and computes garbage or NaN."""
    if len(node.input) < 2 or not node.input[1]:
        return
    value = index.value(node.input[1])
    if value is None:
        return  # not a constant, or one kept in external data
    try:
        scales = np.asarray(value, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        return
    bad = scales[~(np.isfinite(scales) & (scales > 0))]
    if bad.size:
        out.error("quant", f"scale '{node.input[1]}' holds {float(bad[0])} ({bad.size} of "
                           f"{scales.size} values): a scale must be finite and positive",
                  index.label(i), node.op_type)


def _axis(node: onnx.NodeProto) -> int:
    for attr in node.attribute:
        if attr.name == "axis":
            return attr.i
    return 1


def _check_scale_shape(i: int, node: onnx.NodeProto, index: GraphIndex, out) -> None:
    if len(node.input) < 2:
        return
    scale, data = index.shapes.get(node.input[1]), index.shapes.get(node.input[0])
    if scale is None or data is None or len(scale) == 0:
        return  # unknown, or per-tensor (a scalar)
    if len(scale) == 1:
        axis = _axis(node) % max(len(data), 1)
        size = data[axis] if axis < len(data) else None
        if isinstance(size, int) and size > 0 and scale[0] not in (size, 1):
            out.error("quant", f"per-channel scale '{node.input[1]}' has {scale[0]} values for "
                               f"axis {axis} of size {size}", index.label(i), node.op_type)
        return
    if len(scale) != len(data):
        out.error("quant", f"scale '{node.input[1]}' of rank {len(scale)} on data of rank "
                           f"{len(data)}: TensorRT accepts a scalar, a 1-D per-channel scale or a "
                           "same-rank block scale", index.label(i), node.op_type)


def _reduction_axis(gemm: onnx.NodeProto, position: int, rank: int) -> int | None:
    """The axis a GEMM sums over on its input ``position`` (0: A, 1: B), else None."""
    if gemm.op_type == "MatMul" and position in (0, 1) and rank >= 2:
        return rank - 1 if position == 0 else rank - 2
    if gemm.op_type == "Gemm" and position in (0, 1) and rank == 2:
        trans = {a.name: a.i for a in gemm.attribute}
        flip = trans.get("transA" if position == 0 else "transB", 0)
        return (1 - flip) if position == 0 else flip
    return None


def _check_channel_axis(i: int, node: onnx.NodeProto, index: GraphIndex, out) -> None:
    """A per-channel DQ feeding a GEMM (directly or through Transposes) must scale along an
    output axis (N of a weight, M of an input), never along the reduction axis K: a scale that
    varies along K cannot be taken out of the dot product, so no FP8 GEMM runs it. onnx-tensorrt
    takes the node; the fusion does not."""
    scale, data = index.shapes.get(node.input[1]) if len(node.input) > 1 else None, \
        index.shapes.get(node.input[0])
    if not scale or len(scale) != 1 or scale[0] == 1 or data is None:
        return
    stack = [(node.output[0], _axis(node) % max(len(data), 1), len(data))]
    while stack:
        name, axis, rank = stack.pop()
        for _, user in index.consumer_nodes(name):
            if user.op_type == "Transpose":
                perm = next((list(a.ints) for a in user.attribute if a.name == "perm"),
                            list(range(rank))[::-1])
                stack.append((user.output[0], perm.index(axis), rank))
                continue
            for position, x in enumerate(user.input):
                if x == name and _reduction_axis(user, position, rank) == axis:
                    out.warning("quant", f"per-channel scale '{node.input[1]}' varies along "
                                         f"the reduction axis of {user.op_type} "
                                         f"'{user.name}': it cannot be taken out of the dot "
                                         "product, so TensorRT runs no FP8 GEMM here (scale "
                                         "the output features: N of a weight)",
                                index.label(i), node.op_type)


def _check_fusion(i: int, node: onnx.NodeProto, index: GraphIndex, table: OpTable, out) -> None:
    fused = set(table.quantization["fused_consumers"])
    movement = set(table.quantization["movement_ops"])
    stack, seen = [node.output[0]], set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        for _, user in index.consumer_nodes(name):
            if user.op_type in fused:
                return
            if user.op_type in movement:
                stack.extend(user.output)
    out.warning("quant", f"'{node.output[0]}' reaches no {'/'.join(sorted(fused))}: TensorRT "
                         "runs this Q/DQ pair unfused (no FP8 GEMM)", index.label(i),
                node.op_type)

"""Graphs of any size: trace a skeleton without weights, then stream the weights in.

torch's exporter copies every weight into a protobuf (several times over: 16.7 GB of memory for
2.6 GB of weights, measured) and a protobuf stops at 2 GiB. So the exporter writes a skeleton
(``export_params=False``: each parameter and buffer is a graph input named as in the state
dict), graph passes run on the small skeleton, and ``attach_weights`` then turns those inputs
into initializers, one tensor at a time, each converted to the dtype the (possibly rewritten)
skeleton declares. Weights go inline while the graph stays below ``EXTERNAL_BYTES``; past it,
into one data file beside the graph (``<graph>.data``, ONNX external data; integer buffers
such as the trie stay inline).

On the way, weight-only subgraphs the exporter would have folded are folded here:
``Transpose(W)`` stores W transposed, and ``QuantizeLinear(W)`` (per-tensor FP8) stores W in FP8
(``compact_fp8``), so the FP8 graph holds its GEMM weights in one byte each and a
``DequantizeLinear`` reads them directly (a Transpose after it is folded into the stored FP8
weight: per-tensor scales commute with it; a per-channel DQ's ``axis`` follows the stored
layout).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

EXTERNAL_BYTES = int(1.5 * 2**30)  # past this, weights go into <graph>.data
ALIGN = 4096  # external tensors start on page boundaries (memory-mapped by ONNX Runtime)

TORCH_TYPES = {TensorProto.FLOAT: torch.float32, TensorProto.BFLOAT16: torch.bfloat16,
               TensorProto.FLOAT16: torch.float16, TensorProto.INT64: torch.int64,
               TensorProto.INT32: torch.int32, TensorProto.BOOL: torch.bool,
               TensorProto.FLOAT8E4M3FN: torch.float8_e4m3fn}


TABLE_BYTES = 64 * 2**20  # embedding tables above this are traced through a few of their rows


@contextmanager
def small_tables(module: torch.nn.Module, rows: int):
    """While tracing, each large embedding table is its first ``rows`` rows (a view).

    The exporter clones every parameter while it traces (so a 6 GB item table would exist
    twice); a table is only gathered from, so the graph does not depend on its length, and
    ``attach_weights`` writes the whole table later."""
    swapped = []
    for emb in module.modules():
        if isinstance(emb, torch.nn.Embedding) and emb.num_embeddings > rows and \
                emb.weight.numel() * emb.weight.element_size() > TABLE_BYTES:
            swapped.append((emb, emb.weight))
            emb.weight = torch.nn.Parameter(emb.weight[:rows], requires_grad=False)
    try:
        yield
    finally:
        for emb, weight in swapped:
            emb.weight = weight


def export_skeleton(module: torch.nn.Module, example: torch.Tensor, path: Path,
                    inputs: list[str], outputs: list[str], opset: int) -> onnx.ModelProto:
    """torch -> ONNX without weights (legacy TorchScript exporter: fast, and it keeps
    ModelOpt's quantizer nodes, which the dynamo exporter does not)."""
    axes = {name: {0: "N"} for name in (*inputs, *outputs)}
    rows = int(example.max()) + 1
    with torch.no_grad(), warnings.catch_warnings(), small_tables(module, rows):
        warnings.simplefilter("ignore")  # tracer notes about Python control flow and asserts
        torch.onnx.export(module, (example,), str(path), input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, opset_version=opset,
                          dynamo=False, do_constant_folding=False, export_params=False)
    skeleton = onnx.load(str(path))
    path.unlink()
    return fold_constants(skeleton)


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold the subgraphs that depend on no input and no weight (shape arithmetic, TopK's K,
    quantizer scales): what the exporter's own folding did, now with onnx-graphsurgeon since
    the weights are inputs of the skeleton."""
    import onnx_graphsurgeon as gs
    import onnxruntime
    from onnx_graphsurgeon.logger import G_LOGGER

    G_LOGGER.severity = G_LOGGER.ERROR  # it warns for every subgraph it leaves (bf16 ones)
    onnxruntime.set_default_logger_severity(3)  # and evaluates the rest on ONNX Runtime
    graph = gs.import_onnx(model)
    graph.fold_constants(error_ok=True).cleanup(remove_unused_graph_inputs=False)
    folded = gs.export_onnx(graph)
    folded.ir_version = model.ir_version
    return folded


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _array(tensor: TensorProto) -> np.ndarray:
    from onerec_trt.export.passes import bf16_array_to_float

    if tensor.data_type == TensorProto.BFLOAT16:
        tensor = bf16_array_to_float(tensor)
    return onnx.numpy_helper.to_array(tensor).astype(np.float32)


def _constant(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    """The float32 value of a constant (a Constant node or an initializer), else None."""
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return _array(node.attribute[0].t)
    return next((_array(t) for t in graph.initializer if t.name == name), None)


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)  # ONNX's default


def _set_axis(node: onnx.NodeProto, axis: int) -> None:
    del node.attribute[:]  # a DQ's one attribute (opset 19)
    node.attribute.append(helper.make_attribute("axis", axis))


@dataclass
class FP8Scale:
    """A stored FP8 weight's scale: a scalar (per-tensor), or one value per index of ``axis``
    (per-channel), in the layout the weight is stored in."""

    values: np.ndarray
    axis: int | None = None

    def divisor(self, shape: tuple[int, ...], rows: slice) -> torch.Tensor:
        """The scale broadcast over a piece of the stored weight (``rows`` of its axis 0)."""
        values = torch.from_numpy(self.values.reshape(-1).copy())
        if self.axis is None:
            return values.reshape(())
        view = [1] * len(shape)
        if self.axis == 0:
            values = values[rows]
        view[self.axis] = values.numel()
        return values.reshape(view)


def _perm(node: onnx.NodeProto) -> list[int]:
    for attr in node.attribute:
        if attr.name == "perm":
            return list(helper.get_attribute_value(attr))
    raise ValueError(f"Transpose {node.name} has no perm")  # the exporter always writes one


class _Plan:
    """How each weight is stored: its final name, a transpose, FP8 quantization."""

    def __init__(self, graph: onnx.GraphProto, weights: set[str], compact_fp8: bool):
        self.perm: dict[str, list[int]] = {}
        self.fp8_scale: dict[str, FP8Scale] = {}
        self.dead: list[onnx.NodeProto] = []
        consumers = _consumers(graph)
        for name in weights:
            users = consumers.get(name, [])
            perms = {tuple(_perm(u)) for u in users if u.op_type == "Transpose"}
            if users and all(u.op_type == "Transpose" for u in users) and len(perms) == 1:
                self._fold_transpose(graph, name, users, consumers)
            elif compact_fp8 and users and all(u.op_type == "QuantizeLinear" for u in users):
                self._fold_quantize(graph, name, users, consumers)

    def _fold_transpose(self, graph, name, users, consumers) -> None:
        self.perm[name] = _perm(users[0])
        for user in users:  # every consumer of the transposed tensor reads the weight itself
            for node in consumers.get(user.output[0], []):
                node.input[:] = [name if i == user.output[0] else i for i in node.input]
            self.dead.append(user)

    def _fold_quantize(self, graph, name, qs, consumers) -> None:
        """Every consumer is Q(W) -> DQ with the same scale, per-tensor or per-channel (the
        decoder quantizes a weight once per step): store W / scale in FP8 once, every DQ reads
        it. Where every DQ is followed by the same Transpose, that is stored too (a
        per-channel DQ's axis then names the channel axis of the stored layout)."""
        scales = [_constant(graph, q.input[1]) for q in qs]
        dqs = [consumers.get(q.output[0], []) for q in qs]
        if any(v is None for v in scales) or any(
                len(d) != 1 or d[0].op_type != "DequantizeLinear" for d in dqs):
            return
        first = scales[0]
        axes = {_axis(n) for n in [*qs, *(d[0] for d in dqs)]} if first.size > 1 else {None}
        if len(axes) != 1 or any(a is not None and a < 0 for a in axes) or any(
                v.shape != first.shape or not np.array_equal(v, first) for v in scales):
            return  # differing scales, or an axis counted from the end: kept as exported
        axis = axes.pop()
        self.fp8_scale[name] = FP8Scale(first, axis)
        dqs = [d[0] for d in dqs]
        for q, dq in zip(qs, dqs, strict=True):
            dq.input[0] = name  # DQ reads the stored FP8 weight
            self.dead.append(q)
        after = [consumers.get(dq.output[0], []) for dq in dqs]
        if all(len(a) == 1 and a[0].op_type == "Transpose" for a in after) and len(
                {tuple(_perm(a[0])) for a in after}) == 1:
            self.perm[name] = _perm(after[0][0])
            for dq, a in zip(dqs, after, strict=True):
                dq.output[0] = a[0].output[0]
                self.dead.append(a[0])
            if axis is not None:  # the channels' axis in the stored (transposed) layout
                self.fp8_scale[name].axis = self.perm[name].index(axis)
        if axis is not None:
            for dq in dqs:
                _set_axis(dq, self.fp8_scale[name].axis)


CHUNK_BYTES = 64 * 2**20  # a big weight is converted and written this much at a time


def _stored(value: torch.Tensor, elem_type: int, perm: list[int] | None,
            fp8_scale: FP8Scale | None):
    """The weight as the graph stores it, in pieces of about ``CHUNK_BYTES`` along its first
    axis (the shape, then the raw bytes of each piece): a 6 GB embedding table never exists
    twice, whatever its dtype conversion."""
    value = value.detach()
    if perm is not None:
        value = value.permute(*perm)
    target = torch.float8_e4m3fn if fp8_scale is not None else TORCH_TYPES[elem_type]
    rows = value.shape[0] if value.dim() else 1
    row_bytes = max(1, value.numel() // max(rows, 1)) * value.element_size()
    step = max(1, CHUNK_BYTES // row_bytes)
    starts = [0] if value.dim() == 0 else range(0, rows, step)

    def convert(start: int) -> memoryview:
        piece = value if value.dim() == 0 else value[start:start + step]
        if fp8_scale is not None:
            piece = piece.float() / fp8_scale.divisor(tuple(value.shape),
                                                      slice(start, start + step))
        piece = piece.to(target).contiguous()
        if piece.dtype in (torch.bfloat16, torch.float8_e4m3fn):
            piece = piece.view(torch.uint16 if piece.dtype == torch.bfloat16 else torch.uint8)
        return memoryview(piece.numpy()).cast("B")

    return tuple(value.shape), (convert(start) for start in starts)


def attach_weights(skeleton: onnx.ModelProto, weights: Mapping[str, torch.Tensor], path: Path,
                   compact_fp8: bool = False, external_bytes: int = EXTERNAL_BYTES) -> int:
    """Write ``skeleton`` with its weight inputs as initializers to ``path`` (and, when the
    weights pass ``external_bytes``, ``<path>.data``); returns the graph's total bytes."""
    model = onnx.ModelProto()
    model.CopyFrom(skeleton)
    g = model.graph
    used = {name for node in g.node for name in node.input}
    declared = {i.name: i.type.tensor_type.elem_type for i in g.input
                if i.name in weights and i.name in used}
    unused = {i.name for i in g.input if i.name in weights} - set(declared)
    plan = _Plan(g, set(declared), compact_fp8)
    kept = [n for n in g.node if all(n is not d for d in plan.dead)]
    del g.node[:]
    g.node.extend(kept)
    del g.value_info[:]  # shapes and types changed where weights were folded
    sizes = {n: weights[n].numel() * (1 if n in plan.fp8_scale else
                                      torch.empty(0, dtype=TORCH_TYPES[t]).element_size())
             for n, t in declared.items()}
    external = sum(sizes.values()) > external_bytes
    data = path.with_name(path.name + ".data")
    offset = 0
    with open(data, "wb") if external else _NoFile() as handle:
        for name, elem_type in declared.items():
            shape, pieces = _stored(weights[name], elem_type, plan.perm.get(name),
                                    plan.fp8_scale.get(name))
            dtype = TensorProto.FLOAT8E4M3FN if name in plan.fp8_scale else elem_type
            tensor = TensorProto(name=name, data_type=dtype, dims=shape)
            if external and _goes_external(dtype, sizes[name]):
                pad = -offset % ALIGN
                handle.write(b"\0" * pad)
                offset += pad
                length = sum(handle.write(piece) for piece in pieces)
                tensor.data_location = TensorProto.EXTERNAL
                for key, value in (("location", data.name), ("offset", str(offset)),
                                   ("length", str(length))):
                    tensor.external_data.add(key=key, value=value)
                offset += length
            else:
                tensor.raw_data = b"".join(bytes(piece) for piece in pieces)
            g.initializer.append(tensor)
    inputs = [i for i in g.input if i.name not in declared and i.name not in unused]
    del g.input[:]
    g.input.extend(inputs)
    onnx.save(model, str(path))
    return path.stat().st_size + (data.stat().st_size if external else 0)


def _goes_external(dtype: int, size: int) -> bool:
    """Float weights of 1 KiB and more: the integer buffers (the trie, the leaf items) and small
    tensors stay inline, where ONNX Runtime's shape inference can read them."""
    return size >= 1024 and dtype not in (TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL)


class _NoFile:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False

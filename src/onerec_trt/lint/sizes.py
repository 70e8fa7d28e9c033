"""The ``size`` rule: no tensor of 2^31 elements or more at the profile's largest batch.

TensorRT refuses such tensors (a maintainer in NVIDIA/TensorRT#1948: "tensor size has 2G
limitation ... many kernel implementations using 32bit"; #4408 hits it on 10.9), and the error
comes only at build time, after minutes of work. Every tensor's shape is inferred with the
batch axis (axis 0 of every dynamic input, the builder's profile axis) set to a number: ONNX
Runtime's symbolic shape inference, which follows Shape/Reshape arithmetic through the unrolled
beam steps where ONNX's own inference loses the batch. Nothing is allocated. Where a tensor is
too large, the largest batch at which every tensor fits is found by bisection.
"""

from __future__ import annotations

import math

import onnx
from onnx import TensorProto, helper

from onerec_trt.lint.graph_index import STANDARD_DOMAINS

LIMIT = 2**31 - 1  # elements
FLOATS = (TensorProto.FLOAT, TensorProto.BFLOAT16, TensorProto.FLOAT16, TensorProto.DOUBLE,
          TensorProto.FLOAT8E4M3FN)


class ShapeInferenceFailed(RuntimeError):
    pass


def _inferer():
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    class Inferer(SymbolicShapeInference):
        """ONNX Runtime's inference, with the opset-18 reductions (axes as an input) it lacks
        handled like ReduceSum: the same output shape rule."""

        def __init__(self):
            super().__init__(LIMIT, True, False, 0)
            for op in ("ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceLogSum",
                       "ReduceLogSumExp", "ReduceSumSquare"):
                self.dispatcher_[op] = self._infer_ReduceSum

    return Inferer()


def skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with its float constants (initializers and Constant nodes) as typed inputs:
    shapes are computed from integer tensors, and the inference would try to carry float
    values such as -inf through its integer arithmetic."""
    g = model.graph
    kept, typed, nodes = [], [], []
    for init in g.initializer:
        if init.data_type in FLOATS:
            typed.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        else:
            kept.append(init)
    for node in g.node:
        value = _float_constant(node)
        if value is None:
            nodes.append(node)
        else:
            typed.append(helper.make_tensor_value_info(node.output[0], value.data_type,
                                                       list(value.dims)))
    graph = helper.make_graph(nodes, g.name, [*g.input, *typed], list(g.output),
                              initializer=kept)
    return helper.make_model(graph, opset_imports=list(model.opset_import),
                             ir_version=model.ir_version)


def _float_constant(node: onnx.NodeProto) -> onnx.TensorProto | None:
    if node.op_type != "Constant" or node.domain not in STANDARD_DOMAINS:
        return None
    value = next((a.t for a in node.attribute if a.name == "value"), None)
    return value if value is not None and value.data_type in FLOATS else None


def _at_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    out = onnx.ModelProto.FromString(model.SerializeToString())
    initializers = {i.name for i in out.graph.initializer}
    for vi in out.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if vi.name not in initializers and dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = batch
    return out


def volumes(model: onnx.ModelProto, batch: int) -> dict[str, int]:
    """Elements of every tensor whose shape is known at ``batch`` (a skeleton: ``skeleton``)."""
    inferer = _inferer()
    try:
        inferer._preprocess(_at_batch(model, batch))
        while inferer.run_:
            inferer._infer_impl()
    except Exception as exc:  # an op it does not know (a plugin), a shape it cannot follow
        raise ShapeInferenceFailed(str(exc).splitlines()[0] if str(exc) else
                                   type(exc).__name__) from None
    out = {}
    for name, vi in inferer.known_vi_.items():
        dims = vi.type.tensor_type.shape.dim
        if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            out[name] = math.prod(d.dim_value for d in dims)
    return out


def largest_fitting_batch(model: onnx.ModelProto, too_large: int) -> int:
    """The largest batch below ``too_large`` at which every tensor fits (0: none does)."""
    low, high = 0, too_large  # fits at low (0 trivially), not at high
    while high - low > 1:
        mid = (low + high) // 2
        if max(volumes(model, mid).values(), default=0) <= LIMIT:
            low = mid
        else:
            high = mid
    return low


def has_dynamic_batch(model: onnx.ModelProto) -> bool:
    initializers = {i.name for i in model.graph.initializer}
    return any(vi.type.tensor_type.shape.dim and
               not vi.type.tensor_type.shape.dim[0].HasField("dim_value")
               for vi in model.graph.input if vi.name not in initializers)


def check_sizes(model: onnx.ModelProto, max_batch: int, out) -> None:
    """Errors for the tensors past 2^31 - 1 elements at ``max_batch``, each naming the largest
    batch that fits; a warning where shapes cannot be inferred."""
    if any(n.domain not in STANDARD_DOMAINS for n in model.graph.node):
        out.warning("size", "tensor sizes not checked: shape inference does not know the "
                            "plugin ops")
        return
    light = skeleton(model)
    try:
        sizes = volumes(light, max_batch)
        big = sorted(((v, name) for name, v in sizes.items() if v > LIMIT), reverse=True)
        fits = largest_fitting_batch(light, max_batch) if big else max_batch
    except ShapeInferenceFailed as exc:
        out.warning("size", f"tensor sizes not checked at batch {max_batch}: shape inference "
                            f"failed ({exc})")
        return
    producer = {o: n for n in model.graph.node for o in n.output}
    for elements, name in big:
        node = producer.get(name)
        out.error("size", f"tensor '{name}' has {elements:,} elements at batch {max_batch}: "
                          f"TensorRT refuses tensors of 2^31 elements or more; the largest "
                          f"batch that fits is {fits} (--max-batch {fits})",
                  node.name if node is not None else None,
                  node.op_type if node is not None else None)

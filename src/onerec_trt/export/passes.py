"""Graph passes on ONNX models.

``render_bf16_on_cpu``: ONNX Runtime's CPU provider has no bf16 GEMMs, so a bf16 graph cannot
run there. The pass rewrites it to fp32 compute with a bf16 rounding (Cast to bf16, Cast back)
after every op that would produce bf16, and stores bf16 constants as the same values in fp32.
Ops that only move data (Reshape, Gather, ...) need no rounding: their inputs are already
bf16-exact. The result computes what a bf16 engine computes, up to accumulation order.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BF16, FLOAT = TensorProto.BFLOAT16, TensorProto.FLOAT
DATA_MOVEMENT = {"Reshape", "Transpose", "Gather", "GatherElements", "Concat", "Slice",
                 "Squeeze", "Unsqueeze", "Expand", "Identity", "Split", "Flatten", "Where",
                 "Max", "Min", "Shape", "TopK", "Constant"}  # constants are bf16-exact already


def bf16_array_to_float(tensor: TensorProto) -> TensorProto:
    """A bf16 tensor as the fp32 tensor with exactly the same values."""
    if tensor.raw_data:
        raw = np.frombuffer(tensor.raw_data, dtype=np.uint16)
    else:  # bf16 values stored in int32_data, one per entry
        raw = np.asarray(tensor.int32_data, dtype=np.uint16)
    values = (raw.astype(np.uint32) << 16).view(np.float32).reshape(tuple(tensor.dims))
    out = numpy_helper.from_array(values, tensor.name)
    return out


def _convert_attribute_tensors(node: onnx.NodeProto) -> None:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == BF16:
            attr.t.CopyFrom(bf16_array_to_float(attr.t))
        if attr.name == "to" and attr.i == BF16 and node.op_type == "Cast":
            attr.i = FLOAT


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every named tensor (after shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {t.name: t.data_type for t in g.initializer}
    for vi in [*g.input, *g.output, *g.value_info]:
        types[vi.name] = vi.type.tensor_type.elem_type
    return types


def render_bf16_on_cpu(model: onnx.ModelProto) -> onnx.ModelProto:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    types = tensor_types(model)
    g = model.graph
    for i, init in enumerate(g.initializer):
        if init.data_type == BF16:
            g.initializer[i].CopyFrom(bf16_array_to_float(init))
    for vi in [*g.input, *g.output]:
        if vi.type.tensor_type.elem_type == BF16:
            vi.type.tensor_type.elem_type = FLOAT
    del g.value_info[:]
    nodes = []
    for node in g.node:
        _convert_attribute_tensors(node)
        nodes.append(node)
        if node.op_type in DATA_MOVEMENT:
            continue
        for j, out in enumerate(node.output):
            if out and types.get(out) == BF16:
                raw = f"{out}__fp32"
                node.output[j] = raw
                nodes.append(helper.make_node("Cast", [raw], [f"{out}__bf16"], to=BF16,
                                              name=f"{node.name or out}__round_bf16"))
                nodes.append(helper.make_node("Cast", [f"{out}__bf16"], [out], to=FLOAT,
                                              name=f"{node.name or out}__round_fp32"))
    del g.node[:]
    g.node.extend(nodes)
    return model


def score_path(model: onnx.ModelProto, output: str = "scores") -> list[str]:
    """Float tensors that beam scores are computed from: walk back from ``output`` along float
    edges (index tensors are not followed), stopping at the Casts that bring the model's
    logits to fp32 (and at LogSoftmax inputs, in graphs exported before its stable form)."""
    types = tensor_types(model)
    floats = (FLOAT, BF16, TensorProto.FLOAT16, TensorProto.DOUBLE)
    producer = {o: n for n in model.graph.node for o in n.output}
    path, stack = set(), [output]
    while stack:
        name = stack.pop()
        if name in path or types.get(name) not in floats:
            continue
        path.add(name)
        node = producer.get(name)
        if node is None:
            continue
        if node.op_type == "LogSoftmax":
            path.add(node.input[0])
            continue
        if node.op_type == "Cast":  # its output is on the path (and judged), its input not
            continue
        stack.extend(i for i in node.input if i)
    return sorted(path)


def score_path_dtypes(model: onnx.ModelProto) -> dict[str, str]:
    """Element type name of every float tensor on the score path (index tensors left out)."""
    types = tensor_types(model)
    out = {}
    for name in score_path(model):
        dtype = types.get(name)
        if dtype in (FLOAT, BF16, TensorProto.FLOAT16, TensorProto.DOUBLE):
            out[name] = TensorProto.DataType.Name(dtype)
    return out

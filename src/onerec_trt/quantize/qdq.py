"""Q/DQ graph fix-ups.

``standardize_trt_qdq``: ModelOpt's torch quantizers export as ``trt::TRT_FP8QuantizeLinear`` /
``trt::TRT_FP8DequantizeLinear``, which only TensorRT reads. They become standard ONNX
``QuantizeLinear`` / ``DequantizeLinear`` (opset 19) with a scalar FLOAT8E4M3FN zero point and
``saturate=1``: the same numbers, readable by TensorRT and ONNX Runtime alike.

``set_channel_scales``: ModelOpt exports E4M3 only per-tensor; for per-channel weights
(``ptq.per_tensor_for_export``) the weight's Q/DQ get their 1-D scales back, with the ``axis`` of
the output features on the tensor each node reads (onnx-tensorrt's per-channel form).

``swap_fp8_transpose``: ONNX Runtime's CPU provider rejects a Transpose on FP8 data; where a
graph has Q -> Transpose -> DQ, moving the Transpose after the DQ gives identical numbers.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

TRT_Q, TRT_DQ = "TRT_FP8QuantizeLinear", "TRT_FP8DequantizeLinear"
FP8_ZERO = "fp8_e4m3_zero_point"


def standardize_trt_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite ModelOpt's trt-domain FP8 Q/DQ nodes to standard ONNX Q/DQ (returns a copy)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    count = 0
    for node in g.node:
        if node.domain == "trt" and node.op_type in (TRT_Q, TRT_DQ):
            std = "QuantizeLinear" if node.op_type == TRT_Q else "DequantizeLinear"
            inputs = [node.input[0], node.input[1], FP8_ZERO]
            attrs = {"saturate": 1} if std == "QuantizeLinear" else {}
            new = helper.make_node(std, inputs, list(node.output), name=node.name, **attrs)
            node.CopyFrom(new)
            count += 1
    if count:
        del g.value_info[:]  # the exporter typed the trt nodes' outputs as their inputs' type
        g.initializer.append(helper.make_tensor(FP8_ZERO, TensorProto.FLOAT8E4M3FN, [], [0]))
    kept = [o for o in model.opset_import if o.domain != "trt"]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    return model


def set_axis(node: onnx.NodeProto, axis: int) -> None:
    for attr in node.attribute:
        if attr.name == "axis":
            attr.i = axis
            return
    node.attribute.append(helper.make_attribute("axis", axis))


def get_axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)  # ONNX's default


def _scale_tensor(name: str, scales: torch.Tensor, like: int) -> TensorProto:
    """The 1-D scale in the dtype of the scalar it replaces (bf16 graphs carry bf16 scales)."""
    values = scales.detach().float()
    if like == TensorProto.BFLOAT16:
        raw = values.to(torch.bfloat16).view(torch.uint16).numpy()
        return helper.make_tensor(name, like, [values.numel()], raw.tobytes(), raw=True)
    return numpy_helper.from_array(values.numpy().astype(np.float32), name)


def set_channel_scales(model: onnx.ModelProto,
                       scales: dict[str, torch.Tensor]) -> tuple[onnx.ModelProto, int]:
    """Give the Q/DQ of each named weight (``[out, in]``, as ``nn.Linear`` holds it) its
    per-channel scales: a 1-D initializer and a zero point of its shape (ONNX wants the two
    shapes equal), ``axis 0`` on the Q, and on each DQ the axis the
    output features have on its input (``perm.index(0)`` after a Transpose between them).
    Returns (copy, weights rewritten)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    types = {t.name: t.data_type for t in g.initializer}
    types.update({n.output[0]: n.attribute[0].t.data_type for n in g.node
                  if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    done = set()
    for q in [n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] in scales]:
        weight = q.input[0]
        name, zero = f"{weight}__channel_scale", f"{weight}__channel_zero"
        if weight not in done:
            like = types.get(q.input[1], TensorProto.FLOAT)
            g.initializer.append(_scale_tensor(name, scales[weight], like))
            size = scales[weight].numel()
            g.initializer.append(helper.make_tensor(zero, TensorProto.FLOAT8E4M3FN, [size],
                                                    [0] * size))
            done.add(weight)
        q.input[1], q.input[2] = name, zero
        set_axis(q, 0)
        for user in consumers.get(q.output[0], []):
            axis, dqs = 0, [user]
            if user.op_type == "Transpose":
                perm = next(list(a.ints) for a in user.attribute if a.name == "perm")
                axis, dqs = perm.index(0), consumers.get(user.output[0], [])
            for dq in dqs:
                if dq.op_type != "DequantizeLinear":
                    raise RuntimeError(f"{weight}: its QuantizeLinear feeds {dq.op_type}, "
                                       "not a DequantizeLinear")
                dq.input[1], dq.input[2] = name, zero
                set_axis(dq, axis)
    return model, len(done)


def swap_fp8_transpose(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Q -> Transpose -> DQ becomes Q -> DQ -> Transpose (a per-channel DQ's axis follows the
    data); returns (copy, swaps)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    swaps = 0
    for tr in g.node:
        if tr.op_type != "Transpose":
            continue
        q = producer.get(tr.input[0])
        users = consumers.get(tr.output[0], [])
        if q is None or q.op_type != "QuantizeLinear" or len(users) != 1:
            continue
        dq = users[0]
        if dq.op_type != "DequantizeLinear" or len(consumers.get(q.output[0], [])) != 1:
            continue
        # before: q.out -> tr -> t.out -> dq -> d.out ; after: q.out -> dq -> mid -> tr -> d.out
        mid = f"{dq.output[0]}__before_transpose"
        final = dq.output[0]
        if len(dq.input) > 1 and _rank(g, dq.input[1]) == 1:  # per-channel: the axis moves
            perm = next(list(a.ints) for a in tr.attribute if a.name == "perm")
            set_axis(dq, perm[get_axis(dq)])
        dq.input[0] = q.output[0]
        dq.output[0] = mid
        tr.input[0] = mid
        tr.output[0] = final
        swaps += 1
    if swaps:
        _toposort(g)
    return model, swaps


def _rank(g: onnx.GraphProto, name: str) -> int | None:
    for t in g.initializer:
        if t.name == name:
            return len(t.dims)
    for n in g.node:
        if n.op_type == "Constant" and n.output[0] == name and n.attribute[0].name == "value":
            return len(n.attribute[0].t.dims)
    return None


def _toposort(g: onnx.GraphProto) -> None:
    available = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    pending, ordered = list(g.node), []
    while pending:
        rest = []
        for n in pending:
            if all(i in available for i in n.input):
                ordered.append(n)
                available.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise RuntimeError("graph has a cycle or a dangling input after the Transpose swap")
        pending = rest
    del g.node[:]
    g.node.extend(ordered)

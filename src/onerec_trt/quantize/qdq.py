"""Q/DQ graph fix-ups.

``standardize_trt_qdq``: ModelOpt's torch quantizers export as ``trt::TRT_FP8QuantizeLinear`` /
``trt::TRT_FP8DequantizeLinear``, which only TensorRT reads. They become standard ONNX
``QuantizeLinear`` / ``DequantizeLinear`` (opset 19) with a scalar FLOAT8E4M3FN zero point and
``saturate=1``: the same numbers, readable by TensorRT and ONNX Runtime alike.

``swap_fp8_transpose``: ONNX Runtime's CPU provider rejects a Transpose on FP8 data; where a
graph has Q -> Transpose -> DQ, moving the Transpose after the DQ gives identical numbers.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

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


def swap_fp8_transpose(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Q -> Transpose -> DQ (per-tensor) becomes Q -> DQ -> Transpose; returns (copy, swaps)."""
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
        dq.input[0] = q.output[0]
        dq.output[0] = mid
        tr.input[0] = mid
        tr.output[0] = final
        swaps += 1
    if swaps:
        _toposort(g)
    return model, swaps


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

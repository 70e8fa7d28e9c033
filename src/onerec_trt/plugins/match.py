"""Find the standard-op beam steps of an exported generation graph (onnx-graphsurgeon).

``export.graph.GenerationGraph`` writes each step as::

    logp  = LogSoftmax(Cast(logits))                    child = Gather(next_t, node)
    cand  = Add(Unsqueeze(scores), Where(Less(child, 0), -inf, logp))
    new_scores, flat = TopK(Reshape(cand), B)
    parent = floor(flat / V) (Div + fix-ups);  code = Sub(flat, Mul(parent, V))
    next_node = Clip(GatherElements(Reshape(child), flat), 0)

and the items as ``Where(alive, Gather(leaf_item, next_node[:, :K]), -1)``. Matching anchors on
each TopK and names the tensors a plugin step reads and writes; anything unexpected raises
``PatternError`` naming the node, rather than swapping a subgraph it does not understand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

FLOAT = np.float32


class PatternError(RuntimeError):
    """The graph does not have the beam-step pattern the swap knows."""


@dataclass
class BeamStepMatch:
    logits: object  # gs.Variable [N, B, V] float32 (or bf16 where the graph casts from bf16)
    scores: object  # [N, B] running scores in
    node: object  # [N, B] trie node in
    new_scores: object  # the tensors the step produces, in the standard graph
    parent: object
    code: object
    next_node: object
    table: np.ndarray  # the dense next-node table [nodes_t, V]
    vocab: int
    beam_out: int


def _producer(tensor, op: str | tuple[str, ...], where: str):
    ops = (op,) if isinstance(op, str) else op
    node = tensor.inputs[0] if tensor.inputs else None
    if node is None or node.op not in ops:
        found = node.op if node is not None else "a graph input or constant"
        raise PatternError(f"{where}: expected {'/'.join(ops)} producing {tensor.name}, "
                           f"found {found}")
    return node


def _consumer(tensor, op: str, where: str, check=lambda n: True):
    for node in tensor.outputs:
        if node.op == op and check(node):
            return node
    raise PatternError(f"{where}: no {op} consumes {tensor.name}")


def _constant(tensor, where: str) -> np.ndarray:
    import onnx_graphsurgeon as gs

    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    node = tensor.inputs[0] if tensor.inputs else None
    if node is not None and node.op == "Constant":
        return np.asarray(node.attrs["value"].values)
    raise PatternError(f"{where}: {tensor.name} is not a constant")


def _logits(logp_input, keep_bf16: bool):
    """The logits behind LogSoftmax's input: identity fp32 casts are skipped; with
    ``keep_bf16`` a bf16 -> fp32 cast is skipped too (the plugin casts on its own)."""
    tensor = logp_input
    while tensor.inputs and tensor.inputs[0].op == "Cast":
        source = tensor.inputs[0].inputs[0]
        if source.dtype == FLOAT or (keep_bf16 and _is_bf16(source.dtype)):
            tensor = source
        else:
            break
    return tensor


def _is_bf16(dtype) -> bool:
    """onnx-graphsurgeon keeps numpy-less types (bf16) as their ONNX enum."""
    return dtype is not None and (dtype == onnx.TensorProto.BFLOAT16
                                  or "bfloat16" in str(dtype).lower())


def match_step(topk, keep_bf16: bool) -> BeamStepMatch:
    where = f"TopK {topk.name}"
    new_scores, flat = topk.outputs
    cand = _producer(_producer(topk.inputs[0], "Reshape", where).inputs[0], "Add", where)
    masked = next((t for t in cand.inputs if t.inputs and t.inputs[0].op == "Where"), None)
    lifted = next((t for t in cand.inputs if t.inputs and t.inputs[0].op == "Unsqueeze"), None)
    if masked is None or lifted is None:
        raise PatternError(f"{where}: the candidate Add is not Unsqueeze(scores) + Where(...)")
    mask = masked.inputs[0]
    logp = _producer(mask.inputs[2], "LogSoftmax", where)
    child = _producer(_producer(mask.inputs[0], "Less", where).inputs[0], "Gather", where)
    table = _constant(child.inputs[0], where)
    if table.ndim != 2:
        raise PatternError(f"{where}: the trie table {child.inputs[0].name} is not 2-D")
    code_sub = _consumer(flat, "Sub", where, lambda n: n.inputs[0] is flat)
    parent_mul = _producer(code_sub.inputs[1], "Mul", where)
    clip = _consumer(_consumer(flat, "GatherElements", where).outputs[0], "Clip", where)
    k = _constant(topk.inputs[1], where).reshape(-1)
    return BeamStepMatch(
        logits=_logits(logp.inputs[0], keep_bf16), scores=_producer(lifted, "Unsqueeze",
                                                                    where).inputs[0],
        node=child.inputs[1], new_scores=new_scores, parent=parent_mul.inputs[0],
        code=code_sub.outputs[0], next_node=clip.outputs[0], table=table,
        vocab=int(table.shape[1]), beam_out=int(k[0]))


def match_steps(graph, keep_bf16: bool) -> list[BeamStepMatch]:
    """Every beam step of the graph, in execution order."""
    graph.toposort()
    steps = [match_step(node, keep_bf16) for node in graph.nodes if node.op == "TopK"]
    if not steps:
        raise PatternError("no TopK in the graph: not a generation graph from 'onerec-trt export'")
    for prev, step in zip(steps, steps[1:], strict=False):
        if step.node is not prev.next_node or step.scores is not prev.new_scores:
            raise PatternError(f"step reading {step.node.name} does not continue the previous "
                               "step's beams")
    return steps


def match_items(graph, last: BeamStepMatch):
    """(the leaf_item Gather's output, the leaf_item table) of the final item lookup."""
    for node in graph.nodes:
        if node.op != "Gather" or not node.inputs or node.inputs[0].name != "leaf_item":
            continue
        return node.outputs[0], _constant(node.inputs[0], f"Gather {node.name}")
    raise PatternError("no Gather(leaf_item, ...): not a generation graph from 'onerec-trt "
                       "export'")

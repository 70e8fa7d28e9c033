"""Find the standard-op beam steps of an exported generation graph (onnx-graphsurgeon).

``export`` writes each step with the ``csr`` beam step (``model.generate.CsrStep``)::

    logp  = LogSoftmax(Cast(logits))   (written as its stable form: model/logexp.py)
    valid = Less(slots, Unsqueeze(Gather(count_t, node)))
    child = Where(valid, Add(Unsqueeze(Gather(first_t, node)), slots), 0)
    cand  = Add(Unsqueeze(scores), Where(valid, GatherElements(logp, Gather(code_t, child)), -inf))
    new_scores, flat = TopK(Reshape(cand), B)
    parent = Div(flat, C);  code = GatherElements(Reshape(Gather(code_t, child)), flat)
    next_node = GatherElements(Reshape(child), flat)

and the items as ``Where(alive, Gather(leaf_item, next_node[:, :K]), -1)``. Step 0 reads no
node (every beam sits at the root): ``cand = Add(Unsqueeze(scores), logp)`` (or ``Gather(logp,
root codes, axis=2)`` where the root lacks some codes), ``slot = Sub(flat, Mul(parent, C))``
is the next node, and the code is ``Gather(root codes, slot)`` (or the slot itself).

Matching anchors on each TopK, names the tensors a plugin step reads and writes, and reads the
trie's CSR arrays from the step's constants; anything unexpected raises ``PatternError`` naming
the node, rather than swapping a subgraph it does not understand.
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
    node: object | None  # [N, B] trie node in (None at step 0: every beam is at the root)
    new_scores: object  # the tensors the step produces, in the standard graph
    parent: object
    code: object
    next_node: object
    indptr: np.ndarray  # the level's CSR row pointers [nodes_t + 1]
    child_code: np.ndarray  # the level's child codes [nodes_{t+1}]
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
    """The value of a constant tensor: an initializer, a Constant node, or an Identity of one
    (the exporter shares equal initializers that way)."""
    import onnx_graphsurgeon as gs

    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    node = tensor.inputs[0] if tensor.inputs else None
    if node is not None and node.op == "Constant":
        return np.asarray(node.attrs["value"].values)
    if node is not None and node.op == "Identity":
        return _constant(node.inputs[0], where)
    raise PatternError(f"{where}: {tensor.name} is not a constant")


def _log_softmax(tensor, where: str):
    """(node, input x) of ``tensor = LogSoftmax(x)``, or of the stable form export writes
    (``model/logexp.py``): ``Add(Sub(x, ReduceMax(x)), ReduceMax(LogSoftmax(x)))``."""
    node = _producer(tensor, ("LogSoftmax", "Add"), where)
    if node.op == "LogSoftmax":
        return node, node.inputs[0]
    shifted = _producer(node.inputs[0], "Sub", where)
    peak = _producer(node.inputs[1], "ReduceMax", where)
    x, top = shifted.inputs[:2]
    if (_producer(top, "ReduceMax", where).inputs[0] is not x
            or _producer(peak.inputs[0], "LogSoftmax", where).inputs[0] is not x):
        raise PatternError(f"{where}: {tensor.name} is not a log-softmax of one tensor")
    return node, x


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


def _gathered_by(tensor, where: str):
    """(table constant, index tensor) of ``Unsqueeze(Gather(table, index))``."""
    gather = _producer(_producer(tensor, "Unsqueeze", where).inputs[0], "Gather", where)
    return _constant(gather.inputs[0], where), gather.inputs[1]


def _trie_level(valid, child, code_idx, where: str) -> tuple[np.ndarray, np.ndarray, object]:
    """(indptr, child codes, node tensor) of a step, from its valid/child/code subgraph."""
    count, node = _gathered_by(valid.inputs[0].inputs[1], where)
    offset = _producer(child, "Where", where).inputs[1]
    first, node2 = _gathered_by(_producer(offset, "Add", where).inputs[0], where)
    if node2 is not node:
        raise PatternError(f"{where}: the child offsets and counts read different nodes")
    codes = _constant(_producer(code_idx, "Gather", where).inputs[0], where)
    if first.ndim != 1 or first.shape != count.shape:
        raise PatternError(f"{where}: the CSR first/count arrays disagree")
    indptr = np.concatenate([first, [first[-1] + count[-1]] if len(first) else [0]])
    return indptr.astype(np.int64), codes.astype(np.int64), node


def match_root(topk, cand, lifted, keep_bf16: bool, where: str) -> BeamStepMatch:
    """Step 0: the root's children are constants (see the module docstring)."""
    new_scores, flat = topk.outputs
    read = next(t for t in cand.inputs if t is not lifted)
    producer = _producer(read, ("LogSoftmax", "Add", "Gather"), where)
    logp, x = _log_softmax(producer.inputs[0] if producer.op == "Gather" else read, where)
    vocab = logp.outputs[0].shape[-1] if logp.outputs[0].shape else None
    if not isinstance(vocab, int | np.integer):
        raise PatternError(f"{where}: the logits' codebook size is not static")
    codes = np.arange(vocab) if producer.op != "Gather" else \
        _constant(producer.inputs[1], where)
    slot = _consumer(flat, "Sub", where).outputs[0]
    gathered = next((n for n in slot.outputs if n.op == "Gather" and n.inputs[1] is slot
                     and producer.op == "Gather"), None)
    k = _constant(topk.inputs[1], where).reshape(-1)
    return BeamStepMatch(
        logits=_logits(x, keep_bf16),
        scores=_producer(lifted, "Unsqueeze", where).inputs[0], node=None,
        new_scores=new_scores, parent=_consumer(flat, "Div", where).outputs[0],
        code=gathered.outputs[0] if gathered else slot, next_node=slot,
        indptr=np.array([0, len(codes)], dtype=np.int64),
        child_code=np.asarray(codes, dtype=np.int64), vocab=int(vocab), beam_out=int(k[0]))


def match_step(topk, keep_bf16: bool) -> BeamStepMatch:
    where = f"TopK {topk.name}"
    new_scores, flat = topk.outputs
    cand = _producer(_producer(topk.inputs[0], "Reshape", where).inputs[0], "Add", where)
    masked = next((t for t in cand.inputs if t.inputs and t.inputs[0].op == "Where"), None)
    lifted = next((t for t in cand.inputs if t.inputs and t.inputs[0].op == "Unsqueeze"), None)
    if lifted is None:
        raise PatternError(f"{where}: the candidate Add is not Unsqueeze(scores) + ...")
    if masked is None:
        return match_root(topk, cand, lifted, keep_bf16, where)
    valid, picked = masked.inputs[0].inputs[:2]
    if not picked.inputs or picked.inputs[0].op != "GatherElements":
        raise PatternError(f"{where}: not a CSR beam step (the candidates are not gathered "
                           "children); a graph exported with --step dense is a reference and "
                           "is not swapped: export with the default --step csr")
    gather = picked.inputs[0]
    logp, x = _log_softmax(gather.inputs[0], where)
    code_idx = gather.inputs[1]
    code_pick = _consumer(flat, "GatherElements", where,
                          lambda n: n.inputs[0].inputs and n.inputs[0].inputs[0].op == "Reshape"
                          and n.inputs[0].inputs[0].inputs[0] is code_idx)
    child = _producer(code_idx, "Gather", where).inputs[1]
    node_pick = _consumer(flat, "GatherElements", where,
                          lambda n: n.inputs[0].inputs and n.inputs[0].inputs[0].op == "Reshape"
                          and n.inputs[0].inputs[0].inputs[0] is child)
    indptr, child_code, node = _trie_level(valid, child, code_idx, where)
    k = _constant(topk.inputs[1], where).reshape(-1)
    vocab = logp.outputs[0].shape[-1] if logp.outputs[0].shape else None
    if not isinstance(vocab, int | np.integer):
        raise PatternError(f"{where}: the logits' codebook size is not static")
    return BeamStepMatch(
        logits=_logits(x, keep_bf16),
        scores=_producer(lifted, "Unsqueeze", where).inputs[0], node=node,
        new_scores=new_scores, parent=_consumer(flat, "Div", where).outputs[0],
        code=code_pick.outputs[0], next_node=node_pick.outputs[0], indptr=indptr,
        child_code=child_code, vocab=int(vocab), beam_out=int(k[0]))


def match_steps(graph, keep_bf16: bool) -> list[BeamStepMatch]:
    """Every beam step of the graph, in execution order."""
    graph.toposort()
    steps = [match_step(node, keep_bf16) for node in graph.nodes if node.op == "TopK"]
    if not steps:
        raise PatternError("no TopK in the graph: not a generation graph from 'onerec-trt export'")
    if steps[0].node is not None:
        raise PatternError("the first beam step reads trie nodes: not a graph of this version's "
                           "export (re-export it)")
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

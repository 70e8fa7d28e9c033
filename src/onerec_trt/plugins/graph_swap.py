"""The plugin swap: standard-op beam steps -> plugin nodes (onnx-graphsurgeon).

Each step's CSR subgraph (LogSoftmax, trie Gathers, Where, Add, TopK, Div, ...) becomes
``TrieBeamExpand`` -> ``TrieBeamSelect`` and the final ``Gather(leaf_item, node)`` becomes
``CodesToItem(codes)``; the nodes are in domain ``onerec`` with ``plugin_namespace="onerec"``,
as TensorRT's parser looks QDP creators up. The per-level CSR constants go; one packed trie
(``indptr``, ``child_code``, ``offsets``, ``leaf_item`` initializers), built from the graph's
own constants (the swap needs no model), is shared by every node.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from onerec_trt.plugins.match import BeamStepMatch, match_items, match_steps
from onerec_trt.plugins.packed import PackedTrie
from onerec_trt.plugins.spec import (
    CODES_TO_ITEM,
    MAX_BEAM_OUT,
    NAMESPACE,
    TRIE_BEAM_EXPAND,
    TRIE_BEAM_SELECT,
)


@dataclass
class SwapResult:
    model: onnx.ModelProto
    steps: int
    vocab: list[int]
    beam_out: list[int]
    trie_bytes: int  # the packed trie shared by the plugin nodes
    nodes_before: int
    nodes_after: int

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "model"}


def _trie_constants(gs, trie: PackedTrie) -> list:
    return [gs.Constant(f"{NAMESPACE}_trie_{name}", np.ascontiguousarray(values))
            for name, values in trie.arrays().items()]


def _step_nodes(gs, t: int, step: BeamStepMatch, trie_inputs: list) -> list:
    """TrieBeamExpand + TrieBeamSelect writing the step's existing output tensors."""
    attrs = {"step": t, "beam_out": step.beam_out, "vocab": step.vocab,
             "plugin_namespace": NAMESPACE}
    extra, node = [], step.node
    if node is None:  # step 0: every beam at the root, node 0
        shape = gs.Variable(f"{NAMESPACE}_step{t}_shape", dtype=np.int64)
        node = gs.Variable(f"{NAMESPACE}_step{t}_root", dtype=np.int64)
        extra = [gs.Node("Shape", f"{NAMESPACE}_step{t}_shape", inputs=[step.scores],
                         outputs=[shape]),
                 gs.Node("ConstantOfShape", f"{NAMESPACE}_step{t}_root",
                         {"value": onnx.helper.make_tensor("zero", onnx.TensorProto.INT64, [1],
                                                           [0])}, [shape], [node])]
    code = step.code
    if code is step.next_node:  # the root has every code: slot, code and node are one tensor
        code = gs.Variable(f"{NAMESPACE}_step{t}_code", dtype=np.int64)
    outs = [step.new_scores, step.parent, code, step.next_node]
    for tensor in outs:
        tensor.inputs.clear()  # detach from the standard-op producers
    cand = gs.Variable(f"{NAMESPACE}_step{t}_cand", dtype=np.int64)
    expand = gs.Node(TRIE_BEAM_EXPAND.name, f"{NAMESPACE}_step{t}_expand", attrs,
                     [step.logits, step.scores, node, *trie_inputs], [cand],
                     domain=NAMESPACE)
    select = gs.Node(TRIE_BEAM_SELECT.name, f"{NAMESPACE}_step{t}_select", dict(attrs),
                     [cand, node, *trie_inputs], outs, domain=NAMESPACE)
    return [*extra, expand, select]


def _check(steps: list[BeamStepMatch], trie: PackedTrie) -> None:
    vocab = [s.vocab for s in steps]
    if trie.codebook_sizes != vocab:
        raise ValueError(f"the trie's codebook sizes {trie.codebook_sizes} are not the "
                         f"graph's {vocab}")
    for t, s in enumerate(steps):
        if not 1 <= s.beam_out <= MAX_BEAM_OUT:
            raise ValueError(f"step {t}: beam {s.beam_out} outside [1, {MAX_BEAM_OUT}]")
        if s.beam_out * s.vocab >= 2 ** 31:  # flat index beam * V + code is 32 bits in a key
            raise ValueError(f"step {t}: beam x vocab = {s.beam_out * s.vocab} >= 2^31")


def load_for_swap(path) -> onnx.ModelProto:
    """A graph as the swap reads it: the structure, and the values of its integer tensors only
    (the trie's CSR arrays); weights in external data stay where they are."""
    from pathlib import Path

    from onerec_trt.graphs import read_external

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL and tensor.data_type in (
                onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            tensor.CopyFrom(onnx.numpy_helper.from_array(read_external(tensor, path.parent),
                                                         tensor.name))
    return model


def drop_identity_casts(graph) -> int:
    """Bypass every fp32 -> fp32 Cast (what the bf16 CPU rendering leaves of bf16 -> fp32
    casts): ONNX Runtime 1.24's CastElimination breaks some swapped graphs that keep them (a
    T5 graph: "Node input '/layer_norm/Cast_1_output_0' is not ... output of a previous
    node" at session creation). Returns how many were bypassed."""
    dropped = 0
    for node in graph.nodes:
        source, target = (node.inputs[0], node.outputs[0]) if node.op == "Cast" else (None, None)
        if source is None or source.dtype != np.float32 or node.attrs.get("to") != \
                onnx.TensorProto.FLOAT or target in graph.outputs:
            continue
        for consumer in list(target.outputs):
            for i, tensor in enumerate(list(consumer.inputs)):
                if tensor is target:
                    consumer.inputs[i] = source
        dropped += 1
    return dropped


def swap_graph(model: onnx.ModelProto, keep_bf16_logits: bool = True) -> SwapResult:
    """Replace the beam subgraph of an exported generation graph by plugin nodes (the result
    keeps the source's external weights: write it beside their data files, then check it).

    ``keep_bf16_logits``: where the graph casts bf16 logits to fp32 for the log-softmax, feed
    the bf16 tensor to the plugin (half the bytes to read; TensorRT graphs). CPU renderings
    want fp32 logits (the ONNX Runtime ops read fp32)."""
    import onnx_graphsurgeon as gs
    from onnx_graphsurgeon.logger import G_LOGGER

    G_LOGGER.severity = G_LOGGER.ERROR  # bf16 tensors it cannot show in NumPy: not a problem
    nodes_before = len(model.graph.node)
    graph = gs.import_onnx(onnx.shape_inference.infer_shapes(model))
    steps = match_steps(graph, keep_bf16_logits)
    leaf_out, leaf_item = match_items(graph, steps[-1])
    trie = PackedTrie.from_csr([s.indptr for s in steps], [s.child_code for s in steps],
                               leaf_item, [s.vocab for s in steps])
    _check(steps, trie)
    trie_inputs = _trie_constants(gs, trie)
    for t, step in enumerate(steps):
        graph.nodes.extend(_step_nodes(gs, t, step, trie_inputs[:3]))
    codes = next(o for o in graph.outputs if o.name == "codes")
    leaf_out.inputs.clear()
    graph.nodes.append(gs.Node(CODES_TO_ITEM.name, f"{NAMESPACE}_codes_to_item",
                               {"plugin_namespace": NAMESPACE}, [codes, *trie_inputs],
                               [leaf_out], domain=NAMESPACE))
    drop_identity_casts(graph)
    graph.cleanup(remove_unused_graph_inputs=False).toposort()
    out = gs.export_onnx(graph)
    if not any(o.domain == NAMESPACE for o in out.opset_import):
        out.opset_import.append(onnx.helper.make_opsetid(NAMESPACE, 1))
    out.ir_version = model.ir_version
    return SwapResult(out, len(steps), [s.vocab for s in steps], [s.beam_out for s in steps],
                      int(sum(a.nbytes for a in trie.arrays().values())),
                      nodes_before, len(out.graph.node))

"""Warnings for graphs that TensorRT builds but computes worse than ONNX Runtime does.

- ``numerics``: onnx-tensorrt imports ``ReduceLogSumExp`` as exp -> ReduceLogSum with no max
  shift (a value above ~88.7 overflows fp32 to inf) and ``LogSoftmax`` as Softmax -> Log (a
  probability below fp32's range becomes -inf: a live beam candidate dies). ONNX Runtime
  computes both stably, so a CPU check never shows it. ``onerec-trt export`` writes the stable
  forms (``model/logexp.py``); a user's own graph hears about it here. A LogSoftmax read only
  by ReduceMax is safe: only the log of the largest probability (at least 1/V) is kept.
- ``precision``: a MatMul/Gemm on FLOAT inputs in a graph whose other GEMMs run in bf16/fp16
  (or FP8 through Q/DQ) runs in fp32 in a strongly typed engine: slower, and it skews an FP8
  vs bf16 comparison. Typically an fp32 constant (a RoPE table) promoting activations.
"""

from __future__ import annotations

from onerec_trt.lint.graph_index import STANDARD_DOMAINS, GraphIndex

UNSTABLE = {
    "ReduceLogSumExp": "TensorRT's importer computes it as exp -> ReduceLogSum with no max "
                       "shift: a value above ~88.7 gives inf; write max - ReduceMax(LogSoftmax(x))",
    "LogSoftmax": "TensorRT's importer computes it as Softmax -> Log: a probability below "
                  "fp32's range gives -inf where ONNX Runtime keeps it; write (x - max) + "
                  "ReduceMax(LogSoftmax(x)) (the log of the largest probability stays finite)",
}
GEMMS = ("MatMul", "Gemm")
LOW = ("BFLOAT16", "FLOAT16")
DQ_OPS = ("DequantizeLinear", "TRT_FP8DequantizeLinear")
MOVES = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Expand", "Identity")


def _only_its_peak_is_read(index: GraphIndex, node) -> bool:
    """A LogSoftmax whose every reader is a ReduceMax: the log of the largest probability."""
    readers = index.consumer_nodes(node.output[0])
    return node.op_type == "LogSoftmax" and bool(readers) and all(
        reader.op_type == "ReduceMax" for _, reader in readers)


def check_unstable_ops(index: GraphIndex, out) -> None:
    for i, node in enumerate(index.nodes):
        if (node.domain in STANDARD_DOMAINS and node.op_type in UNSTABLE
                and not _only_its_peak_is_read(index, node)):
            out.warning("numerics", UNSTABLE[node.op_type], index.label(i), node.op_type)


def _dequantized(index: GraphIndex, name: str) -> bool:
    """``name`` comes from a DequantizeLinear through data movement only (an FP8 GEMM input)."""
    node = index.producer_node(name)
    while node is not None and node.op_type in MOVES and node.input:
        node = index.producer_node(node.input[0])
    return node is not None and node.op_type in DQ_OPS


def check_fp32_gemms(index: GraphIndex, out) -> None:
    gemms = [(i, n) for i, n in enumerate(index.nodes)
             if n.op_type in GEMMS and n.domain in STANDARD_DOMAINS and len(n.input) >= 2]
    low = any(index.types.get(x) in LOW or _dequantized(index, x)
              for _, n in gemms for x in n.input[:2])
    if not low:
        return  # an fp32 graph: fp32 GEMMs are what it asks for
    for i, node in gemms:
        inputs = node.input[:2]
        if all(index.types.get(x) == "FLOAT" and not _dequantized(index, x) for x in inputs):
            out.warning("precision", f"{node.op_type} on FLOAT inputs ('{inputs[0]}', "
                                     f"'{inputs[1]}') in a bf16/FP8 graph: TensorRT runs it "
                                     "in fp32; cast its inputs (an fp32 constant such as a "
                                     "RoPE table promotes them) to the compute dtype",
                        index.label(i), node.op_type)

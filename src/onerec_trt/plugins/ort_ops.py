"""ONNX Runtime custom ops for the plugins: onnxruntime-extensions Python ops that call the
torch ops (``torch_ops``), so a plugin-bearing graph (``*.plugins.cpu.onnx``) runs on the CPU.

The ops live in the graphs' domain (``spec.NAMESPACE``); ``graphs.make_session`` calls
``register_ops`` when a graph has nodes of that domain. Only fp32 logits: ONNX Runtime's CPU
provider runs the CPU renderings, whose logits are fp32 (the bf16 graphs are for TensorRT).
"""

from __future__ import annotations

import numpy as np
import torch

from onerec_trt.errors import user_error
from onerec_trt.plugins import torch_ops
from onerec_trt.plugins.spec import CODES_TO_ITEM, NAMESPACE, TRIE_BEAM_EXPAND, TRIE_BEAM_SELECT

_REGISTERED = False


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def trie_beam_expand(logits, scores, node, indptr, child_code, offsets, step, beam_out, vocab):
    if logits.shape[-1] != vocab:
        raise ValueError(f"TrieBeamExpand: logits have {logits.shape[-1]} codes, vocab={vocab}")
    with torch.no_grad():
        cand = torch_ops.trie_beam_expand(_t(logits), _t(scores), _t(node), _t(indptr),
                                          _t(child_code), _t(offsets), int(step), int(beam_out))
    return cand.numpy()


def trie_beam_select(cand, node, indptr, child_code, offsets, step, beam_out, vocab):
    with torch.no_grad():
        out = torch_ops.trie_beam_select(_t(cand), _t(node), _t(indptr), _t(child_code),
                                         _t(offsets), int(step), int(beam_out), int(vocab))
    return tuple(t.numpy() for t in out)


def codes_to_item(codes, indptr, child_code, offsets, leaf_item):
    with torch.no_grad():
        items = torch_ops.codes_to_item(_t(codes), _t(indptr), _t(child_code), _t(offsets),
                                        _t(leaf_item))
    return items.numpy()


def register_ops() -> None:
    """Declare the ops to onnxruntime-extensions (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return
    try:
        from onnxruntime_extensions import PyCustomOpDef, onnx_op
    except ImportError:
        raise user_error("running plugin graphs on the CPU needs onnxruntime-extensions",
                         "pip install onnxruntime-extensions==0.15.2") from None
    f32, i64 = PyCustomOpDef.dt_float, PyCustomOpDef.dt_int64
    trie = [i64, i64, i64]
    attrs = {"step": i64, "beam_out": i64, "vocab": i64}
    onnx_op(op_type=f"{NAMESPACE}::{TRIE_BEAM_EXPAND.name}", inputs=[f32, f32, i64, *trie],
            outputs=[i64], attrs=attrs)(trie_beam_expand)
    onnx_op(op_type=f"{NAMESPACE}::{TRIE_BEAM_SELECT.name}", inputs=[i64, i64, *trie],
            outputs=[f32, i64, i64, i64], attrs=attrs)(trie_beam_select)
    onnx_op(op_type=f"{NAMESPACE}::{CODES_TO_ITEM.name}", inputs=[i64, *trie, i64],
            outputs=[i64])(codes_to_item)
    _REGISTERED = True

"""Which order among tied scores a backend keeps (issue 28, T4).

The beam step's rule is "ties go to the lower flat index" (``model.generate``): torch's stable
sort and ONNX TopK (documented: lower index first) keep it, and so do the plugins' kernels,
which sort themselves. A TensorRT engine of the standard-op graph runs the beam step's TopK as
``INetworkDefinition::addTopK``, which promises only "sorted, largest first": equal scores (bf16
logits tie often) may come back in another order, so a different item can enter the beam. Such
an engine is judged on overlap@10, never on exact order; ``exact_match`` stays a statistic.
"""

from __future__ import annotations

BEAM_PLUGINS = ("TrieBeamStep", "TrieBeamExpand", "TrieBeamSelect")


def tie_order(kind: str, plugins: list[dict]) -> dict:
    """``{"exact": bool, "why": str}`` for a backend of ``kind`` (``backends.KINDS``)
    whose engine metadata lists ``plugins``."""
    if kind != "trt":
        return {"exact": True, "why": "ties keep the lower index (torch's stable sort, ONNX TopK)"}
    if any(p.get("name") in BEAM_PLUGINS for p in plugins):
        return {"exact": True, "why": "the plugin beam step applies the tie rule itself"}
    return {"exact": False,
            "why": "TensorRT's TopK promises largest-first only, no order among equal scores: "
                   "this standard-op engine is gated on overlap, not exact order"}


def candidate_tie_order(backend) -> dict:
    """``tie_order`` of a verify backend (a ``.plan``'s plugins from its metadata)."""
    plugins = backend.meta.plugins if backend.kind == "trt" else []
    return tie_order(backend.kind, plugins)

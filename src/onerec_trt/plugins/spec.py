"""The beam-search plugin set: names, inputs, outputs and attributes, documented in one place.

Every rendering (numpy/torch reference, Triton kernels, TensorRT ``tensorrt.plugin``
registration, ONNX Runtime custom ops, the ONNX graph swap) takes its names from here. In ONNX
the nodes are ``op_type=<name>``, ``domain=NAMESPACE`` with the attribute
``plugin_namespace=NAMESPACE`` (what TensorRT's ONNX parser uses to find a QDP creator).

The trie is passed as CSR arrays per step t (see ``model/trie.py``): ``indptr_t`` [nodes_t + 1]
and ``child_code_t`` [nodes_{t+1}]; a beam's prefix (c1..ct) is identified by its trie node id
at depth t, so a node id is the compact form of the beam's prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NAMESPACE = "onerec"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: str
    dtypes: tuple[str, ...]
    doc: str = ""


@dataclass(frozen=True)
class PluginSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    attributes: dict[str, str] = field(default_factory=dict)
    doc: str = ""


TRIE_BEAM_STEP = PluginSpec(
    name="TrieBeamStep",
    doc="One trie-constrained beam step, fused: log-softmax (fp32) over each beam's logits, "
        "+ the beam's running score, -inf for codes that are not children of the beam's trie "
        "node, then the top B' of the B x V candidates. Ties go to the lower flat index "
        "beam * V + code (the torch reference's rule). Dead beams (score -inf) stay dead.",
    inputs=(
        TensorSpec("logits", "[N, B, V]", ("float32", "bfloat16")),
        TensorSpec("scores", "[N, B]", ("float32",), "running beam scores"),
        TensorSpec("node", "[N, B]", ("int64",), "each beam's trie node at depth t"),
        TensorSpec("indptr", "[nodes_t + 1]", ("int64",), "CSR row pointers of step t"),
        TensorSpec("child_code", "[nodes_t+1]", ("int64",), "CSR column (code) of each child"),
    ),
    outputs=(
        TensorSpec("new_scores", "[N, B']", ("float32",)),
        TensorSpec("parent", "[N, B']", ("int64",), "index of the parent beam"),
        TensorSpec("code", "[N, B']", ("int64",), "code chosen at this step"),
        TensorSpec("next_node", "[N, B']", ("int64",), "trie node at depth t+1 (0 if dead)"),
    ),
    attributes={"beam_out": "int: B', the number of beams kept (<= B * V)"},
)

CODES_TO_ITEM = PluginSpec(
    name="CodesToItem",
    doc="Final code tuples to item ids by walking the trie; -1 where no item has the codes.",
    inputs=(
        TensorSpec("codes", "[N, K, L]", ("int64",)),
        TensorSpec("indptr", "[sum_t nodes_t + L]", ("int64",), "all steps' CSR row pointers"),
        TensorSpec("child_code", "[sum_t nodes_{t+1}]", ("int64",), "all steps' CSR codes"),
        TensorSpec("offsets", "[2 * L]", ("int64",), "start of each step in indptr/child_code"),
        TensorSpec("leaf_item", "[nodes_L]", ("int64",), "item id of each leaf"),
    ),
    outputs=(TensorSpec("items", "[N, K]", ("int64",)),),
)

PLUGINS: dict[str, PluginSpec] = {p.name: p for p in (TRIE_BEAM_STEP, CODES_TO_ITEM)}

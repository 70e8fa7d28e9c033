"""The beam-search plugin set: names, inputs, outputs and attributes, documented in one place.

Every rendering (torch reference, Triton kernels, TensorRT ``tensorrt.plugin`` registration,
ONNX Runtime custom ops, the ONNX graph swap) takes its names from here. In ONNX the nodes are
``op_type=<name>``, ``domain=NAMESPACE`` with the attribute ``plugin_namespace=NAMESPACE``
(what TensorRT's ONNX parser uses to find a QDP creator).

**The trie** is one packed set of CSR arrays shared by every plugin node (see ``packed.py``):
``indptr`` = the per-step row pointers ``indptr_t`` [nodes_t + 1] one after another,
``child_code`` = the per-step child codes ``child_code_t`` [nodes_{t+1}] one after another
(ascending within each node), ``offsets`` [2, L + 1] = where step t starts in each (row 0 in
``indptr``, row 1 in ``child_code``; the last column is the total length), ``leaf_item``
[nodes_L] = the item id of each leaf. A beam's prefix (c1..ct) is identified by its trie node
id at depth t (node j at depth t+1 = position j of ``child_code_t``).

**TrieBeamStep** (one trie-constrained beam step) is the composite ``TrieBeamSelect(
TrieBeamExpand(...))``: a TensorRT AOT plugin runs exactly one kernel and has no workspace, so
the two stages of the top-k (per beam, then per user) are two plugin nodes with the per-beam
candidate lists as the tensor between them. The composite's contract is ``TRIE_BEAM_STEP``.

**Candidate keys** (the tensor between the two stages): a candidate (value v, flat index
f = beam * V + code) is the int64 ``(desc(v) << 32) | f``, where ``desc`` is an int32 that
orders float32 values descending (-0.0 counted as +0.0). Ascending keys are exactly the
reference order: higher value first, ties to the lower flat index. Keys are unique.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NAMESPACE = "onerec"
PLUGIN_VERSION = "1"  # every op's TensorRT plugin version (QDP plugins are version "1")
# B' is sorted in one thread block; TensorRT's own TopK stops at 3840. Only B' <= 512 has been
# compiled and measured (docs/plugins.md); larger B' is refused where it needs more shared
# memory than a launch gets without opting in (aot.SHARED_MEMORY_LIMIT).
MAX_BEAM_OUT = 4096
# The one TensorRT version gate of the project: tensorrt.plugin.aot_impl (AOT Python plugins)
# arrived in TensorRT 10.9; engines/tensorrt_lib.py, the plugin registration and pyproject's
# ``tensorrt`` extra all use this.
MIN_TENSORRT = (10, 9)
# aot.py needs triton.compiler.ASTSource(constexprs=...) (Triton 3.2) and strips the hidden
# scratch parameters Triton 3.3 added; pyproject's ``tensorrt`` extra pins the same.
MIN_TRITON = (3, 3)


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


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

    @property
    def plugin_id(self) -> str:
        """The TensorRT QDP id, ``namespace::name``."""
        return f"{NAMESPACE}::{self.name}"


TRIE = (
    TensorSpec("indptr", "[sum_t (nodes_t + 1)]", ("int64",), "packed CSR row pointers"),
    TensorSpec("child_code", "[sum_t nodes_{t+1}]", ("int64",), "packed CSR child codes"),
    TensorSpec("offsets", "[2, L + 1]", ("int64",), "start of step t in indptr / child_code"),
)
STEP_INPUTS = (
    TensorSpec("logits", "[N, B, V]", ("float32", "bfloat16"), "the model's step-t logits"),
    TensorSpec("scores", "[N, B]", ("float32",), "running beam scores (-inf: dead beam)"),
    TensorSpec("node", "[N, B]", ("int64",), "each beam's trie node at depth t (its prefix); "
               "ids outside [0, nodes_t) have no children"),
)
STEP_OUTPUTS = (
    TensorSpec("new_scores", "[N, B']", ("float32",), "descending; -inf where dead"),
    TensorSpec("parent", "[N, B']", ("int64",), "index of the parent beam"),
    TensorSpec("code", "[N, B']", ("int64",), "code chosen at this step"),
    TensorSpec("next_node", "[N, B']", ("int64",),
               "trie node at depth t+1 of (parent's node, code); 0 where code is not a child"),
)
STEP_ATTRIBUTES = {
    "step": "int: t, the trie level this step decodes (0-based)",
    "beam_out": f"int: B', the beams kept, 1 <= B' <= min(B * V, {MAX_BEAM_OUT})",
    "vocab": "int: V, the level's codebook size (the logits' last axis)",
}

TRIE_BEAM_STEP = PluginSpec(
    name="TrieBeamStep",
    doc="One trie-constrained beam step, fused: log-softmax (fp32) over each beam's logits, "
        "+ the beam's running score, -inf for codes that are not children of the beam's trie "
        "node, then the top B' of the B x V candidates. Ties go to the lower flat index "
        "beam * V + code (the torch reference's rule); when fewer than B' candidates are "
        "finite the rest are -inf candidates in flat-index order. Dead beams stay dead. "
        "Composite: TrieBeamSelect(TrieBeamExpand(...)).",
    inputs=STEP_INPUTS + TRIE,
    outputs=STEP_OUTPUTS,
    attributes=STEP_ATTRIBUTES,
)

TRIE_BEAM_EXPAND = PluginSpec(
    name="TrieBeamExpand",
    doc="Stage 1 of TrieBeamStep, one program per beam: log-softmax, score accumulation and "
        "trie masking of the beam's V candidates, then the beam's KC = min(B', V) best "
        "candidate keys, ascending. A global top-B' never takes more than B' from one beam, "
        "and -inf candidates are listed in code order, so the lists hold the answer.",
    inputs=STEP_INPUTS + TRIE,
    outputs=(TensorSpec("cand", "[N, B, KC]", ("int64",), "sorted candidate keys per beam"),),
    attributes=STEP_ATTRIBUTES,
)

TRIE_BEAM_SELECT = PluginSpec(
    name="TrieBeamSelect",
    doc="Stage 2 of TrieBeamStep, one program per user: the B' smallest keys of the B sorted "
        "lists (bisection on the value part, ties by flat index), decoded to scores, parent "
        "beam, code and the child's trie node.",
    inputs=(TensorSpec("cand", "[N, B, KC]", ("int64",)), STEP_INPUTS[2]) + TRIE,
    outputs=STEP_OUTPUTS,
    attributes=STEP_ATTRIBUTES,
)

CODES_TO_ITEM = PluginSpec(
    name="CodesToItem",
    doc="Final code tuples to item ids by walking the trie; -1 where no item has the codes.",
    inputs=(TensorSpec("codes", "[N, K, L]", ("int64",)),) + TRIE + (
        TensorSpec("leaf_item", "[nodes_L]", ("int64",), "item id of each leaf"),),
    outputs=(TensorSpec("items", "[N, K]", ("int64",)),),
)

# The ops that appear in plugin-bearing graphs and are registered with TensorRT.
PLUGINS: dict[str, PluginSpec] = {
    p.name: p for p in (TRIE_BEAM_EXPAND, TRIE_BEAM_SELECT, CODES_TO_ITEM)}
# Documented compositions of registered plugins.
COMPOSITES: dict[str, tuple[PluginSpec, tuple[str, ...]]] = {
    TRIE_BEAM_STEP.name: (TRIE_BEAM_STEP, (TRIE_BEAM_EXPAND.name, TRIE_BEAM_SELECT.name))}


def candidates_per_beam(beam_out: int, vocab: int) -> int:
    """KC, the length of each beam's candidate list."""
    return min(beam_out, vocab)


def next_pow2(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()

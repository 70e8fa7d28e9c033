"""Trie-constrained beam search over the semantic-ID levels: the one generation loop.

``Generator`` runs the model's context once, then L decode steps; after each decode step a
**beam step** picks the next beams among the trie's valid children. The loop is the same in
eager torch (eval, bench, the torch backend) and in the exported ONNX graph (export traces it);
only the beam step differs, chosen by name (``STEPS``):

- ``dense``: the step every other step is tested against. Dense next-node tables [nodes_t, V_t]
  (-1: no child), candidates B x V_t. Only fits toy catalogues (1M items in 3 x 8192 codes:
  ~64 GiB of tables).
- ``csr``: standard ops whose trie cost grows with the edges: per level the CSR arrays
  (each node's first child, its child count, the children's codes); candidates B x C_t (C_t:
  the most children a node has at level t), read with Gather. What ``export`` writes.
- ``plugin``: the plugin ops written in torch (``plugins.torch_ops``) on the packed trie.
- ``triton-lang``: the plugins' OpenAI Triton kernels (GPU, or the CPU interpreter); ``triton``
  is accepted for it (its old name; Triton alone names the inference server).

A step is a module called as ``step(logits [N, B, V_t], scores [N, B], node [N, B], t, B) ->
(scores, parent, code, next_node)``, each [N, B]; ``node`` is each beam's trie node at depth t
(its prefix), numbered as the trie's CSR positions.

**The rules** (every step follows them; tests hold each step to the ``dense`` step):

- B beams from the start; beam 0 has score 0 and beams 1..B-1 start dead (-inf), so step 0
  expands only beam 0 and needs no special case.
- step t: log-softmax in fp32 over the full level-t codebook (the model's own distribution,
  not renormalised over valid children), plus the beam's running fp32 score; codes that are
  not children of the beam's trie node are not candidates.
- the next beams are the top B candidates; **ties go to the lower parent beam, then the lower
  code** (the lower flat index ``parent * V + code``: a stable descending sort, which is also
  ONNX TopK's documented tie rule). Children are listed in ascending code order, so a step that
  enumerates (beam, child) pairs has the same order.
- dead beams (-inf) stay dead. The result is the first K beams; where fewer than K items exist
  the rest are dead: item -1, codes -1, score -inf.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from onerec_trt.model.logexp import log_softmax
from onerec_trt.model.protocol import GenerativeRecommender
from onerec_trt.model.trie import Trie

DEAD = float("-inf")

# name -> the class that builds the step from a trie ("module:Class"; the plugin steps live
# with the plugins and are imported only when asked for: model/ never imports plugins/)
STEPS = {
    "dense": "onerec_trt.model.generate:DenseStep",
    "csr": "onerec_trt.model.generate:CsrStep",
    "plugin": "onerec_trt.plugins.steps:PluginStep",
    "triton-lang": "onerec_trt.plugins.steps:TritonLangStep",
}
STEP_ALIASES = {"triton": "triton-lang"}  # old names a caller may still pass


@dataclass
class Recommendations:
    items: np.ndarray  # [N, K] int64 model item ids, -1 where fewer than K items exist
    scores: np.ndarray  # [N, K] float32 sum of log-probabilities (-inf where dead)
    codes: np.ndarray  # [N, K, L] int64 (-1 where dead)


def stable_topk(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k along the last axis; equal values keep ascending index order."""
    values, index = torch.sort(x, dim=-1, descending=True, stable=True)
    return values[..., :k], index[..., :k]


def top_candidates(cand: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The tie rule's top-k: a stable sort in eager torch (``torch.topk`` promises no order
    among ties), ``torch.topk`` when exporting (ONNX TopK: lower index first)."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return torch.topk(cand, k, dim=-1)
    return stable_topk(cand, k)


def split_flat(flat: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat candidate index -> (parent beam, position within the beam's candidates)."""
    parent = torch.div(flat, width, rounding_mode="trunc")  # flat >= 0: trunc is floor
    return parent, flat - parent * width


class DenseStep(nn.Module):
    """The dense step: dense next-node tables [nodes_t, V_t], candidates B x V_t."""

    def __init__(self, trie: Trie):
        super().__init__()
        self.vocab = list(trie.codebook_sizes)
        for t in range(trie.levels):
            self.register_buffer(f"next{t}", torch.as_tensor(trie.dense_next(t)))

    def forward(self, logits, scores, node, t: int, beam: int):
        logp = log_softmax(logits.float())  # [N, B, V] fp32: the stable form (logexp.py)
        child = getattr(self, f"next{t}")[node]  # [N, B, V] next node or -1
        cand = scores.unsqueeze(-1) + torch.where(child < 0, DEAD, logp)
        vocab = self.vocab[t]  # a Python int: a constant in the exported graph
        new_scores, flat = top_candidates(cand.reshape(-1, beam * vocab), beam)
        parent, code = split_flat(flat, vocab)
        next_node = child.reshape(-1, beam * vocab).gather(1, flat).clamp(min=0)
        return new_scores, parent, code, next_node


class CsrStep(nn.Module):
    """Standard ops over the trie's CSR arrays: each beam scores only its node's children.

    Per level t: ``first{t}`` [nodes_t] (a node's first child = its child's node id at depth
    t+1), ``count{t}`` [nodes_t], ``code{t}`` [nodes_{t+1}] (children's codes, ascending per
    node). Storage grows with the trie's edges; a step's work with B x C_t.

    Step 0 reads no node: every beam sits at the root, the only node at depth 0, so its
    children are constants (the widest step, where the root has every code, is the log-softmax
    itself).
    """

    def __init__(self, trie: Trie):
        super().__init__()
        self.levels = trie.levels
        root = np.asarray(trie.child_code[0], dtype=np.int64)
        self.root_is_every_code = np.array_equal(root, np.arange(trie.codebook_sizes[0]))
        self.widths = []
        for t in range(trie.levels):
            ptr = np.asarray(trie.indptr[t])
            counts = np.diff(ptr)
            self.widths.append(max(int(counts.max(initial=0)), 1))
            self.register_buffer(f"first{t}", torch.as_tensor(ptr[:-1].astype(np.int64)))
            self.register_buffer(f"count{t}", torch.as_tensor(counts.astype(np.int64)))
            self.register_buffer(f"code{t}", torch.as_tensor(
                np.asarray(trie.child_code[t], dtype=np.int64)))
            self.register_buffer(f"slots{t}", torch.arange(self.widths[t]))

    def forward(self, logits, scores, node, t: int, beam: int):
        logp = log_softmax(logits.float())  # [N, B, V] fp32: the stable form (logexp.py)
        if t == 0:
            return self._root(logp, scores, beam)
        slots = getattr(self, f"slots{t}")  # [C]
        valid = slots < getattr(self, f"count{t}")[node].unsqueeze(-1)  # [N, B, C]
        child = torch.where(valid, getattr(self, f"first{t}")[node].unsqueeze(-1) + slots, 0)
        code = getattr(self, f"code{t}")[child]  # [N, B, C]
        cand = scores.unsqueeze(-1) + torch.where(valid, logp.gather(2, code), DEAD)
        width = self.widths[t]  # a Python int: a constant in the exported graph
        new_scores, flat = top_candidates(cand.reshape(-1, beam * width), beam)
        parent, _ = split_flat(flat, width)
        chosen_code = code.reshape(-1, beam * width).gather(1, flat)
        next_node = child.reshape(-1, beam * width).gather(1, flat)
        return new_scores, parent, chosen_code, next_node

    def _root(self, logp, scores, beam: int):
        """Step 0: the root's children, as constants; child id = CSR position = slot."""
        codes = self.code0
        lp = logp if self.root_is_every_code else logp.index_select(2, codes)
        width = self.widths[0]
        new_scores, flat = top_candidates((scores.unsqueeze(-1) + lp).reshape(-1, beam * width),
                                          beam)
        parent, slot = split_flat(flat, width)
        return new_scores, parent, slot if self.root_is_every_code else codes[slot], slot


CALL_BYTES = 256 * 2**20  # what one call's largest beam-step tensor may take


def users_per_call(beam: int, codebook_sizes: list[int], wanted: int,
                   budget: int = CALL_BYTES) -> int:
    """``wanted`` users per call, or fewer where a beam step's [users, B, V] int64 tensors
    would pass ``budget`` (beam 512 over 8192 codes: 32 MiB a user)."""
    per_user = beam * max(codebook_sizes) * 8
    return max(1, min(wanted, budget // per_user))


def make_step(name: str, trie: Trie) -> nn.Module:
    """The named beam step for ``trie`` (see ``STEPS``)."""
    name = STEP_ALIASES.get(name, name)
    if name not in STEPS:
        raise ValueError(f"unknown beam step {name!r}; expected one of {', '.join(STEPS)}")
    module, cls = STEPS[name].split(":")
    return getattr(importlib.import_module(module), cls)(trie)


class Generator(nn.Module):
    """The whole request: history [N, S] -> (items [N, K], scores [N, K], codes [N, K, L]).

    One static module: eager torch runs it, and ``torch.onnx.export`` traces it into the one
    graph per request (the L decode steps unrolled).
    """

    def __init__(self, model: GenerativeRecommender, beam: int, topk: int,
                 step: str | nn.Module = "csr", trie: Trie | None = None):
        super().__init__()
        if not 1 <= topk <= beam:
            raise ValueError(f"need 1 <= topk <= beam, got topk={topk}, beam={beam}")
        trie = trie or model.semantic_ids.trie
        self.model, self.beam, self.topk, self.levels = model, beam, topk, trie.levels
        self.step = make_step(step, trie) if isinstance(step, str) else step
        self.register_buffer("leaf_item", torch.as_tensor(trie.leaf_item))
        start = torch.full((beam,), DEAD)
        start[0] = 0.0
        self.register_buffer("start_scores", start)

    def forward(self, history: torch.Tensor):
        model, beam, n = self.model, self.beam, history.shape[0]
        ctx = model.encode_context(history)
        scores = self.start_scores.unsqueeze(0).expand(n, beam)
        node = torch.zeros_like(history[:, :1]).expand(n, beam)
        codes, cache, prev = [], None, None
        for t in range(self.levels):
            logits, cache = model.decode_step(ctx, prev, t, cache, beam)
            scores, parent, prev, node = self.step(logits, scores, node, t, beam)
            codes = [c.gather(1, parent) for c in codes] + [prev]
            if t + 1 < self.levels:
                cache = model.reorder_cache(cache, parent)
        k = self.topk
        alive = scores[:, :k] > DEAD
        items = torch.where(alive, self.leaf_item[node[:, :k]], -1)
        codes = torch.where(alive.unsqueeze(-1), torch.stack(codes, dim=-1)[:, :k], -1)
        return items, scores[:, :k], codes


@torch.no_grad()
def beam_search(model: GenerativeRecommender, history: torch.Tensor, beam: int, topk: int,
                step: str | nn.Module = "csr",
                generator: Generator | None = None) -> Recommendations:
    """history [N, S] (left-padded model item ids) -> the top-``topk`` items of each user.

    Pass a ``generator`` to reuse its trie tables across calls (they are built per call
    otherwise)."""
    generator = generator or Generator(model, beam, topk, step).to(history.device)
    items, scores, codes = generator(history)
    return Recommendations(items.cpu().numpy(), scores.cpu().numpy(), codes.cpu().numpy())

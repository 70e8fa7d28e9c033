"""The generation loop with a pluggable beam step, so one model can be timed with the
reference's dense trie tables, the plugins' CSR renderings, or a compact torch step.

``generate`` is ``model.generate.beam_search`` with the trie-constrained step factored out:
with ``dense_step`` it runs exactly the same ops (tests check the items are identical). A step
maps ``(logits [N, B, V], scores [N, B], node [N, B], t)`` to ``(scores, parent, code,
next_node)``, each [N, B]. No step here synchronises with the host (no ``.item()``, no
data-dependent shapes) except ``plugin_step("reference")``, so the others can be captured in a
CUDA graph.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from onerec_trt.model.generate import stable_topk
from onerec_trt.model.trie import Trie

Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], tuple]


def dense_step(trie: Trie, device="cpu") -> Step:
    """The reference: dense next-node tables [nodes_t, V_t], stable sort (the tie rule)."""
    tables = [torch.as_tensor(trie.dense_next(t), device=device) for t in range(trie.levels)]

    def step(logits, scores, node, t):
        n, beam, vocab = logits.shape
        logp = torch.log_softmax(logits.float(), dim=-1)
        child = tables[t][node]
        cand = scores.unsqueeze(-1) + logp.masked_fill(child < 0, float("-inf"))
        new_scores, flat = stable_topk(cand.reshape(n, beam * vocab), beam)
        next_node = child.reshape(n, beam * vocab).gather(1, flat).clamp_min(0)
        return new_scores, flat // vocab, flat % vocab, next_node

    return step


def plugin_step(trie: Trie, device="cpu", impl: str = "reference") -> Step:
    """The TrieBeamStep plugin on the packed CSR trie: ``reference`` (torch, any device) or
    ``triton`` (the kernels, GPU or TRITON_INTERPRET=1)."""
    from onerec_trt.plugins.packed import PackedTrie

    if impl == "triton":
        from onerec_trt.plugins import kernels as module
    elif impl == "reference":
        from onerec_trt.plugins import reference as module
    else:
        raise ValueError(f"unknown plugin implementation {impl!r}")
    packed = PackedTrie.from_trie(trie)
    arrays = {k: torch.as_tensor(v, device=device) for k, v in packed.arrays().items()
              if k != "leaf_item"}

    def step(logits, scores, node, t):
        return module.trie_beam_step(logits, scores, node, arrays["indptr"],
                                     arrays["child_code"], arrays["offsets"], t,
                                     logits.shape[1])

    return step


def padded_children(trie: Trie, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[nodes_t, C_t] child codes and child node ids per node, -1 padded (C_t: most children)."""
    ptr = torch.as_tensor(trie.indptr[t])
    counts = ptr[1:] - ptr[:-1]
    width = max(int(counts.max()), 1) if len(counts) else 1
    rows = torch.repeat_interleave(torch.arange(len(counts)), counts)
    slot = torch.arange(int(ptr[-1])) - ptr[:-1][rows]
    codes = torch.full((len(counts), width), -1, dtype=torch.long)
    nodes = torch.full((len(counts), width), -1, dtype=torch.long)
    codes[rows, slot] = torch.as_tensor(trie.child_code[t])
    nodes[rows, slot] = torch.arange(int(ptr[-1]))
    return codes, nodes


def padded_step(trie: Trie, device="cpu") -> Step:
    """A compact torch step: score only each beam's children (at most C_t per node), then
    ``torch.topk`` over B x C_t. Same selection as the reference up to the order of exactly
    tied scores; memory O(N B C_t) instead of the dense tables' O(nodes_t V_t)."""
    levels = [tuple(x.to(device) for x in padded_children(trie, t)) for t in range(trie.levels)]

    def step(logits, scores, node, t):
        n, beam, _ = logits.shape
        codes, nodes = levels[t]
        logp = torch.log_softmax(logits.float(), dim=-1)
        kid = codes[node]  # [N, B, C]
        width = kid.shape[-1]
        lp = logp.gather(2, kid.clamp_min(0)).masked_fill(kid < 0, float("-inf"))
        cand = (scores.unsqueeze(-1) + lp).reshape(n, beam * width)
        new_scores, flat = torch.topk(cand, beam, dim=1)
        code = kid.reshape(n, -1).gather(1, flat).clamp_min(0)
        next_node = nodes[node].reshape(n, -1).gather(1, flat).clamp_min(0)
        return new_scores, flat // width, code, next_node

    return step


@torch.no_grad()
def generate(model, history: torch.Tensor, beam: int, topk: int, step: Step,
             leaf_item: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """history [N, S] -> (items [N, topk], scores [N, topk]) with the given beam step."""
    n, levels = history.shape[0], model.cfg.levels
    ctx = model.encode_context(history)
    scores = torch.full((n, beam), float("-inf"), device=history.device)
    scores[:, 0] = 0.0
    node = torch.zeros(n, beam, dtype=torch.long, device=history.device)
    cache, prev = None, None
    for t in range(levels):
        logits, cache = model.decode_step(ctx, prev, t, cache, beam)
        scores, parent, prev, node = step(logits, scores, node, t)
        if t + 1 < levels:
            cache = model.reorder_cache(cache, parent)
    items = torch.where(torch.isfinite(scores), leaf_item[node], -1)
    return items[:, :topk], scores[:, :topk]

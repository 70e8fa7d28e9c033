"""Trie-constrained beam search through the plugin ops, in torch: the plugin graph's meaning
with a model in torch, on the reference ops (CPU or GPU) or on the Triton kernels (GPU, or the
CPU interpreter). With ``ops=reference`` it equals ``model.generate.beam_search`` bit for bit.
"""

from __future__ import annotations

import torch

from onerec_trt.model.generate import Recommendations
from onerec_trt.plugins import reference
from onerec_trt.plugins.packed import PackedTrie


def trie_tensors(trie: PackedTrie, device) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v, device=device) for k, v in trie.arrays().items()}


@torch.no_grad()
def plugin_beam_search(model, history: torch.Tensor, beam: int, topk: int,
                       trie: PackedTrie | None = None, ops=reference) -> Recommendations:
    """history [N, S] -> the top-``topk`` items; ``ops`` provides ``trie_beam_step`` and
    ``codes_to_item`` (``plugins.reference`` or ``plugins.kernels``)."""
    if not 1 <= topk <= beam:
        raise ValueError(f"need 1 <= topk <= beam, got topk={topk}, beam={beam}")
    trie = trie or PackedTrie.from_trie(model.semantic_ids.trie)
    t = trie_tensors(trie, history.device)
    csr = (t["indptr"], t["child_code"], t["offsets"])
    n = history.shape[0]
    ctx = model.encode_context(history)
    scores = torch.full((n, beam), float("-inf"), device=history.device)
    scores[:, 0] = 0.0
    node = torch.zeros(n, beam, dtype=torch.long, device=history.device)
    codes: list[torch.Tensor] = []
    cache, prev = None, None
    for step in range(trie.levels):
        logits, cache = model.decode_step(ctx, prev, step, cache, beam)
        scores, parent, prev, node = ops.trie_beam_step(logits, scores, node, *csr, step, beam)
        codes = [c.gather(1, parent) for c in codes] + [prev]
        if step + 1 < trie.levels:
            cache = model.reorder_cache(cache, parent)
    chosen = torch.stack(codes, dim=-1)[:, :topk].contiguous()
    items = ops.codes_to_item(chosen, *csr, t["leaf_item"])
    items = torch.where(torch.isfinite(scores[:, :topk]), items, -1)
    return Recommendations(items.cpu().numpy(), scores[:, :topk].cpu().numpy(),
                           chosen.cpu().numpy())

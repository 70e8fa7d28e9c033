"""Trie-constrained beam search over the semantic-ID levels: the reference meaning.

Every other rendering (the ONNX standard-op graph, the plugins) must return the same items in
the same order. The rules:
- B beams from the start; beam 0 has score 0 and beams 1..B-1 start dead (-inf), so step 0
  expands only beam 0 and needs no special case.
- step t: log-softmax in fp32 over the full level-t codebook (the model's own distribution,
  not renormalised over valid children), plus the beam's running fp32 score; children that are
  not in the trie get -inf.
- the next beams are the top B of the B x V candidates; **ties go to the lower flat index
  ``parent * V + code``** (lower parent beam first, then lower code), i.e. a stable descending
  sort, which is also ONNX TopK's documented tie rule.
- dead beams (-inf) stay dead; at the end their item is -1. Results are the first K beams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from onerec_trt.model.protocol import GenerativeRecommender


@dataclass
class Recommendations:
    items: np.ndarray  # [N, K] int64 model item ids, -1 where fewer than K items exist
    scores: np.ndarray  # [N, K] float32 sum of log-probabilities
    codes: np.ndarray  # [N, K, L] int64


def stable_topk(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k along the last axis; equal values keep ascending index order."""
    values, index = torch.sort(x, dim=-1, descending=True, stable=True)
    return values[..., :k], index[..., :k]


class TrieTables:
    """The trie's dense next-node tables as torch tensors, built once per model."""

    def __init__(self, trie, device: str | torch.device = "cpu"):
        self.next = [torch.as_tensor(trie.dense_next(t), device=device) for t in range(trie.levels)]
        self.leaf_item = torch.as_tensor(trie.leaf_item, device=device)


@torch.no_grad()
def beam_search(model: GenerativeRecommender, history: torch.Tensor, beam: int, topk: int,
                tables: TrieTables | None = None) -> Recommendations:
    """history [N, S] (left-padded model item ids) -> the top-``topk`` items of each user."""
    if not 1 <= topk <= beam:
        raise ValueError(f"need 1 <= topk <= beam, got topk={topk}, beam={beam}")
    tables = tables or TrieTables(model.semantic_ids.trie, history.device)
    n = history.shape[0]
    ctx = model.encode_context(history)
    scores = torch.full((n, beam), float("-inf"), device=history.device)
    scores[:, 0] = 0.0
    node = torch.zeros(n, beam, dtype=torch.long, device=history.device)
    codes = torch.zeros(n, beam, 0, dtype=torch.long, device=history.device)
    cache, prev = None, None
    for step, table in enumerate(tables.next):
        logits, cache = model.decode_step(ctx, prev, step, cache, beam)
        logp = torch.log_softmax(logits.float(), dim=-1)  # [N, B, V]
        child = table[node]  # [N, B, V] next node or -1
        cand = scores.unsqueeze(-1) + logp.masked_fill(child < 0, float("-inf"))
        vocab = cand.shape[-1]
        scores, flat = stable_topk(cand.reshape(n, beam * vocab), beam)
        parent, prev = flat // vocab, flat % vocab
        node = child.reshape(n, beam * vocab).gather(1, flat).clamp_min(0)
        codes = torch.cat([codes.gather(1, parent[..., None].expand(-1, -1, step)),
                           prev[..., None]], dim=-1)
        if step + 1 < len(tables.next):
            cache = model.reorder_cache(cache, parent)
    items = torch.where(torch.isfinite(scores), tables.leaf_item[node], -1)
    return Recommendations(items[:, :topk].cpu().numpy(), scores[:, :topk].cpu().numpy(),
                           codes[:, :topk].cpu().numpy())

"""The whole request as one static module: context, L unrolled decode steps, beam search.

Written in ops every exporter and TensorRT know (Gather, TopK, Where, Div/Mod, LogSoftmax):
the trie lives in dense next-node tables, one per step. The beam logic runs in fp32 whatever
the model's dtype (ARCHITECTURE decision 4): logits are cast to fp32 before the log-softmax and
the running scores stay fp32. ``torch.topk`` exports to ONNX TopK, whose documented tie rule
(lower index first) is the reference's.
"""

from __future__ import annotations

import torch
from torch import nn

from onerec_trt.model.protocol import GenerativeRecommender

DEAD = float("-inf")


class GenerationGraph(nn.Module):
    def __init__(self, model: GenerativeRecommender, beam: int, topk: int):
        super().__init__()
        if not 1 <= topk <= beam:
            raise ValueError(f"need 1 <= topk <= beam, got topk={topk}, beam={beam}")
        self.model, self.beam, self.topk = model, beam, topk
        trie = model.semantic_ids.trie
        for step in range(trie.levels):
            self.register_buffer(f"next{step}", torch.as_tensor(trie.dense_next(step)))
        self.register_buffer("leaf_item", torch.as_tensor(trie.leaf_item))
        start = torch.full((beam,), DEAD)
        start[0] = 0.0
        self.register_buffer("start_scores", start)
        self.levels = trie.levels

    def forward(self, history: torch.Tensor):
        beam, model = self.beam, self.model
        ctx = model.encode_context(history)
        n = history.shape[0]
        scores = self.start_scores.unsqueeze(0).expand(n, beam)
        node = torch.zeros_like(history[:, :1]).expand(n, beam)
        codes, cache, prev = [], None, None
        for step in range(self.levels):
            logits, cache = model.decode_step(ctx, prev, step, cache, beam)
            logp = torch.log_softmax(logits.float(), dim=-1)  # [N, B, V] fp32
            child = getattr(self, f"next{step}")[node]  # [N, B, V] next node or -1
            cand = scores.unsqueeze(-1) + torch.where(child < 0, DEAD, logp)
            vocab = cand.shape[-1]
            scores, flat = torch.topk(cand.reshape(n, beam * vocab), beam, dim=1)
            parent = torch.div(flat, vocab, rounding_mode="floor")
            prev = flat - parent * vocab
            node = child.reshape(n, beam * vocab).gather(1, flat).clamp(min=0)
            codes = [c.gather(1, parent) for c in codes] + [prev]
            if step + 1 < self.levels:
                cache = model.reorder_cache(cache, parent)
        k = self.topk
        alive = scores[:, :k] > -1e30
        items = torch.where(alive, self.leaf_item[node[:, :k]], -1)
        return items, scores[:, :k], torch.stack(codes, dim=-1)[:, :k]

"""The OneRec-V2 "lazy decoder-only" generative recommender.

context processor: item + position embeddings -> causal transformer -> one K/V set per group
decoder block:     RMSNorm -> causal self-attention over the semantic-ID tokens (BOS, c1, ...)
                   RMSNorm -> lazy cross-attention (only Q and O projections; K/V from the context)
                   RMSNorm -> SwiGLU (or mixture-of-experts) FFN
heads:             one linear head per semantic-ID level
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onerec_trt.model.config import ModelConfig
from onerec_trt.model.layers import (
    MoEFeedForward,
    RMSNorm,
    SwiGLU,
    at_positions,
    attention,
    merge_heads,
    split_heads,
)


@dataclass
class Context:
    """A user's encoded context, computed once per request and shared by all beams."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per KV group: k, v [N, Hkv, S, D]
    mask: torch.Tensor  # [N, S] True where the history has an item


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None,
                past: tuple[torch.Tensor, torch.Tensor] | None = None):
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        return self.out(merge_heads(attention(q, k, v, mask))), (k, v)


class ContextBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(cfg.d_model), RMSNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ffn = SwiGLU(cfg.d_model, cfg.ffn_hidden, cfg.dropout)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), mask)[0])
        return x + self.ffn(self.norm2(x))


class PrefixEmbedding(nn.Module):
    """Training-time input embeddings of an item's semantic-ID prefixes.

    Item i's input becomes ``item_emb[i] + sum_l prefix_emb_l[prefix_l(i)]`` over the prefixes of
    every level but the last, so a rare item borrows what its co-occurrence cluster learned.
    The sum is linear in the parameters, so ``ContextProcessor.fold_prefix_inputs`` adds it into
    ``item_emb`` after training: saved models, their graphs and engines are unchanged.
    """

    def __init__(self, codes: np.ndarray, d_model: int):
        super().__init__()
        ids, sizes = [], []
        for level in range(codes.shape[1] - 1):
            _, inverse = np.unique(codes[1:, : level + 1], axis=0, return_inverse=True)
            ids.append(np.concatenate([[0], inverse.reshape(-1) + 1]))  # row 0: padding
            sizes.append(int(inverse.max()) + 2)
        self.register_buffer("prefix_ids", torch.from_numpy(np.stack(ids, axis=1)),
                             persistent=False)  # [num_items + 1, L - 1]
        self.tables = nn.ModuleList(nn.Embedding(n, d_model, padding_idx=0) for n in sizes)
        for table in self.tables:
            nn.init.normal_(table.weight, std=0.02)
            table.weight.data[0].zero_()

    def table(self) -> torch.Tensor:
        """[num_items + 1, d]: every item's prefix part (zero for padding)."""
        return sum(t(self.prefix_ids[:, lvl]) for lvl, t in enumerate(self.tables))


class ContextProcessor(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(cfg.num_items + 1, cfg.d_model, padding_idx=0)
        self.prefix_inputs: PrefixEmbedding | None = None  # training only; see PrefixEmbedding
        self.pos_emb = nn.Embedding(cfg.max_history, cfg.d_model)
        self.blocks = nn.ModuleList(ContextBlock(cfg) for _ in range(cfg.context_layers))
        self.norm = RMSNorm(cfg.d_model)
        self.kv_proj = nn.ModuleList(
            nn.Linear(cfg.d_model, 2 * cfg.n_kv_heads * cfg.head_dim, bias=False)
            for _ in range(cfg.kv_groups))
        self.dropout = nn.Dropout(cfg.dropout)

    def states(self, history: torch.Tensor) -> torch.Tensor:
        """history [N, S] (left-padded, 0 = padding) -> causal context states [N, S, d]."""
        s = history.shape[1]
        pos = torch.arange(self.cfg.max_history - s, self.cfg.max_history, device=history.device)
        x = self.dropout(self.embed_items(history) + self.pos_emb(pos))
        causal = torch.ones(s, s, dtype=torch.bool, device=history.device).tril()
        mask = causal & (history != 0)[:, None, None, :]
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)

    def item_table(self) -> torch.Tensor:
        """[num_items + 1, d]: the input (and tied auxiliary output) embedding of every item."""
        if self.prefix_inputs is None:
            return self.item_emb.weight
        return self.item_emb.weight + self.prefix_inputs.table()

    def embed_items(self, history: torch.Tensor) -> torch.Tensor:
        if self.prefix_inputs is None:
            return self.item_emb(history)
        return F.embedding(history, self.item_table(), padding_idx=0)

    def fold_prefix_inputs(self) -> None:
        """Add the prefix embeddings into ``item_emb`` and drop them (same outputs, plain model)."""
        if self.prefix_inputs is not None:
            with torch.no_grad():
                self.item_emb.weight.copy_(self.item_table())
            self.prefix_inputs = None

    def keys_values(self, h: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        heads = self.cfg.n_kv_heads
        return [tuple(split_heads(t, heads) for t in proj(h).chunk(2, dim=-1))
                for proj in self.kv_proj]


class DecoderBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.heads = cfg.n_heads
        self.norm1, self.norm2, self.norm3 = RMSNorm(d), RMSNorm(d), RMSNorm(d)
        self.self_attn = SelfAttention(cfg)
        self.cross_q = nn.Linear(d, d, bias=False)  # lazy: no K/V projections of its own
        self.cross_out = nn.Linear(d, d, bias=False)
        self.ffn = (MoEFeedForward(d, cfg.ffn_hidden, cfg.moe_experts, cfg.moe_top_k, cfg.dropout)
                    if cfg.moe_experts else SwiGLU(d, cfg.ffn_hidden, cfg.dropout))
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor],
                cross_mask: torch.Tensor, self_mask: torch.Tensor | None, past=None):
        """x [N, Q, T, d]: Q query groups (beams or training targets) of T tokens each.

        Self-attention runs within each group (over ``past`` plus the T new tokens); the
        cross-attention folds all Q*T queries of a user against that user's one context.
        """
        n, q, t, d = x.shape
        h, cache = self.self_attn(self.norm1(x).reshape(n * q, t, d), self_mask, past)
        x = x + self.dropout(h.view(n, q, t, d))
        cq = split_heads(self.cross_q(self.norm2(x)).reshape(n, q * t, d), self.heads)
        c = merge_heads(attention(cq, kv[0], kv[1], cross_mask)).view(n, q, t, d)
        x = x + self.dropout(self.cross_out(c))
        return x + self.ffn(self.norm3(x)), cache


class OneRecModel(nn.Module):
    def __init__(self, cfg: ModelConfig, semantic_ids=None):
        super().__init__()
        self.cfg = cfg
        self.semantic_ids = semantic_ids  # the tokenizer (codes, trie); not a parameter
        d = cfg.d_model
        self.context = ContextProcessor(cfg)
        self.bos = nn.Parameter(torch.zeros(d))
        self.code_emb = nn.ModuleList(nn.Embedding(v, d) for v in cfg.codebook_sizes[:-1])
        self.level_emb = nn.Embedding(cfg.levels, d)
        self.blocks = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.decoder_layers))
        self.norm = RMSNorm(d)
        self.heads = nn.ModuleList(nn.Linear(d, v, bias=False) for v in cfg.codebook_sizes)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The training init, in place (also after ``to_empty``: a model built on ``meta``):
        linear and embedding weights normal(0, 0.02), padding rows and BOS zero, norms one."""
        def init(module: nn.Module) -> None:  # apply's order: the draws of every earlier version
            if isinstance(module, nn.Linear | nn.Embedding):
                module.weight.normal_(0.0, 0.02, generator=generator)
                if getattr(module, "padding_idx", None) is not None:
                    module.weight[module.padding_idx].zero_()
            elif isinstance(module, RMSNorm):
                module.weight.fill_(1.0)

        self.apply(init)
        self.bos.zero_()

    def kv_group(self, layer: int) -> int:
        return layer // self.cfg.kv_group_size

    # --- the protocol used by generation, export and analysis (see model/protocol.py) ---
    def encode_context(self, history: torch.Tensor) -> Context:
        h = self.context.states(history)
        return Context(self.context.keys_values(h), history != 0)

    def embed_tokens(self, prev_codes: torch.Tensor | None, step: int, shape) -> torch.Tensor:
        """Input token of decode ``step``: BOS at step 0, else the code chosen at step - 1."""
        if step == 0:
            x = self.bos.expand(*shape, -1)
        else:
            x = self.code_emb[step - 1](prev_codes)
        return x + self.level_emb.weight[step]

    def decode_step(self, ctx: Context, prev_codes: torch.Tensor | None, step: int,
                    cache: list | None, beams: int):
        """One generation step for [N, beams] beams -> (logits [N, beams, V_step] fp32, cache).

        ``cache`` holds each block's self-attention keys/values of the earlier tokens, one row
        per beam ([N*beams, H, step, D]); reorder it by parent beam with ``reorder_cache``.
        """
        n = ctx.mask.shape[0]
        x = self.embed_tokens(prev_codes, step, (n, beams)).unsqueeze(2)  # [N, B, 1, d]
        cross_mask = ctx.mask[:, None, None, :]
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(x, ctx.kv[self.kv_group(i)], cross_mask, None,
                                   None if cache is None else cache[i])
            new_cache.append(layer_cache)
        logits = self.heads[step](self.norm(x[:, :, 0]))
        return logits.float(), new_cache

    @staticmethod
    def reorder_cache(cache: list, parent: torch.Tensor) -> list:
        """Gather each beam's self-attention cache from its parent beam (parent [N, B])."""
        n, b = parent.shape
        flat = (parent + torch.arange(n, device=parent.device)[:, None] * b).reshape(-1)
        return [(k.index_select(0, flat), v.index_select(0, flat)) for k, v in cache]

    # --- training ---
    def forward(self, inputs: torch.Tensor, target_codes: torch.Tensor,
                positions: torch.Tensor | None = None):
        """Teacher-forced logits for training windows.

        inputs [N, S] history windows (left-padded); target_codes [N, S, L] the codes of the
        next item at each position; positions [N, M] the positions the decoder predicts (all
        when None). Target position p sees context positions <= p only.
        Returns (per-level logits [N, M, V_l], context states [N, S, d]).
        """
        n, s, levels = target_codes.shape
        h = self.context.states(inputs)
        kv = self.context.keys_values(h)
        if positions is None:
            positions = torch.arange(s, device=inputs.device).expand(n, s)
        m = positions.shape[1]
        codes = at_positions(target_codes, positions)
        tokens = [self.embed_tokens(None, 0, (n, m))]
        tokens += [self.embed_tokens(codes[..., lvl - 1], lvl, None) for lvl in range(1, levels)]
        x = torch.stack(tokens, dim=2)  # [N, M, L, d]
        key_pos = torch.arange(s, device=inputs.device)
        cross = (key_pos[None, None, :] <= positions[..., None]) & (inputs != 0)[:, None, :]
        cross = cross.repeat_interleave(levels, dim=1)  # [N, M*L, S]
        self_mask = torch.ones(1, 1, levels, levels, dtype=torch.bool, device=inputs.device).tril()
        for i, block in enumerate(self.blocks):
            x, _ = block(x, kv[self.kv_group(i)], cross[:, None], self_mask)
        x = self.norm(x)
        return [head(x[:, :, lvl]) for lvl, head in enumerate(self.heads)], h

    def item_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Auxiliary next-item logits from context states (tied to the item embeddings)."""
        return h @ self.context.item_table().t()

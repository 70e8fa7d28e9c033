"""A decoder-only transformers LM (Qwen3, Qwen2, Llama) behind the model protocol.

The context is a prefill over the rendered prompt: every layer's keys and values of the prompt
are kept once per user and shared by all beams (the cache). Decode step 0 reads the prompt's
last hidden state; step t >= 1 feeds each beam's level-(t-1) code token, attending to the
prompt's keys and to its own beam's earlier code tokens. Logits are the level's code tokens
plus one logit for the rest of the vocabulary (``LevelLogits``).

The layers run through the checkpoint's own modules (projections, norms, MLP, LM head: the
GEMMs ModelOpt quantizes); attention is written here with matmuls. Positions count real tokens
only (the history is left-padded), as transformers' generate does for a left-padded batch, so a
padded history gives what the unpadded prompt gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from onerec_trt.model.hf.attention import (
    LevelLogits,
    PromptTokens,
    rotate,
    softmax_attention,
)
from onerec_trt.model.hf.prompt import Prompt


@dataclass
class PromptContext:
    keys: list[torch.Tensor]  # per layer [N, KVH, P, d]
    values: list[torch.Tensor]
    mask: torch.Tensor  # [N, P] real prompt tokens
    length: torch.Tensor  # [N] real tokens: the position of the first code token fed back
    last: torch.Tensor  # [N, D] the prompt's last hidden state, normed


def take_beams(x: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
    """x [N, B, ...] -> each beam takes its parent's row (parent [N, B])."""
    n, b = parent.shape
    flat = (parent + torch.arange(n, device=parent.device)[:, None] * b).reshape(-1)
    return x.reshape(n * b, *x.shape[2:]).index_select(0, flat).reshape(x.shape)


class DecoderOnlyRecommender(nn.Module):
    def __init__(self, backbone: nn.Module, semantic_ids, prompt: Prompt,
                 level_ids: list[list[int]], max_history: int, pad_id: int = 0):
        super().__init__()
        cfg = backbone.config
        self.backbone, self.semantic_ids, self.max_history = backbone, semantic_ids, max_history
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = backbone.model.layers[0].self_attn.head_dim
        self.prompt = PromptTokens(backbone.model.embed_tokens, prompt, semantic_ids.codes,
                                   level_ids, pad_id)
        width = self.prompt.item_rows.shape[1]
        self.logits = LevelLogits(cfg.vocab_size, level_ids)
        longest = len(prompt.prefix) + max_history * width + len(prompt.suffix) + len(level_ids)
        with torch.no_grad():
            cos, sin = backbone.model.rotary_emb(torch.zeros(1), torch.arange(longest)[None])
        self.register_buffer("cos", cos[0].clone())  # [positions, d]
        self.register_buffer("sin", sin[0].clone())

    @property
    def layers(self):
        return self.backbone.model.layers

    def _project(self, attn, x, pos):
        """x [..., D] -> q [..., H, d], k and v [..., KVH, d], rotated at positions ``pos``."""
        split = (*x.shape[:-1], -1, self.head_dim)
        q, k, v = (attn.q_proj(x).reshape(split), attn.k_proj(x).reshape(split),
                   attn.v_proj(x).reshape(split))
        if hasattr(attn, "q_norm"):  # Qwen3: RMSNorm over each head
            q, k = attn.q_norm(q), attn.k_norm(k)
        # in the compute dtype, as transformers' rotary embedding returns them: fp32 tables
        # would promote q and k (and so QK^T and the prompt's K cache) to fp32 in a bf16 graph
        cos = self.cos[pos].unsqueeze(-2).to(q.dtype)
        sin = self.sin[pos].unsqueeze(-2).to(q.dtype)
        return rotate(q, cos, sin), rotate(k, cos, sin), v

    def encode_context(self, history: torch.Tensor) -> PromptContext:
        n = history.shape[0]
        rows, mask = self.prompt(history)
        pos = (mask.float().cumsum(1).long() - 1).clamp(min=0)  # TensorRT: CumSum on floats
        length = rows.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=rows.device).tril()
        allowed = (causal & mask[:, None, :]).unsqueeze(1).unsqueeze(1)  # [N, 1, 1, P, P]
        h = self.prompt.embed(rows)
        keys, values = [], []
        for layer in self.layers:
            attn = layer.self_attn
            q, k, v = self._project(attn, layer.input_layernorm(h), pos)  # [N, P, heads, d]
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            g = self.heads // self.kv_heads
            scores = (q.reshape(n, self.kv_heads, g * length, -1) @ k.transpose(-1, -2))
            probs = softmax_attention((scores * attn.scaling).reshape(
                n, self.kv_heads, g, length, length), allowed).to(v.dtype)
            out = probs.reshape(n, self.kv_heads, g * length, length) @ v
            out = out.reshape(n, self.heads, length, -1).transpose(1, 2).reshape(n, length, -1)
            h = h + attn.o_proj(out)
            h = h + layer.mlp(layer.post_attention_layernorm(h))
            keys.append(k)
            values.append(v)
        last = self.backbone.model.norm(h[:, -1])
        return PromptContext(keys, values, mask, mask.long().sum(1), last)

    def decode_step(self, ctx: PromptContext, prev_codes, step: int, cache, beams: int):
        if step == 0:
            logits = self.logits(self.backbone.lm_head(ctx.last), 0)
            return logits.unsqueeze(1).expand(-1, beams, -1), [None] * len(self.layers)
        h = self.prompt.embed(self.prompt.code_rows(step - 1, prev_codes))  # [N, B, D]
        pos = (ctx.length + (step - 1)).unsqueeze(1)  # [N, 1]
        new_cache = []
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            q, k, v = self._project(attn, layer.input_layernorm(h), pos)  # [N, B, heads, d]
            own_k = k.unsqueeze(3) if cache[i] is None else torch.cat(
                [cache[i][0], k.unsqueeze(3)], dim=3)  # [N, B, KVH, t, d]
            own_v = v.unsqueeze(3) if cache[i] is None else torch.cat(
                [cache[i][1], v.unsqueeze(3)], dim=3)
            out = self._beam_attention(attn, q, ctx.keys[i], ctx.values[i], ctx.mask, own_k,
                                       own_v)
            h = h + attn.o_proj(out)
            h = h + layer.mlp(layer.post_attention_layernorm(h))
            new_cache.append((own_k, own_v))
        return self.logits(self.backbone.lm_head(self.backbone.model.norm(h)), step), new_cache

    def _beam_attention(self, attn, q, prompt_k, prompt_v, mask, own_k, own_v):
        """q [N, B, H, d] against the prompt's keys (shared by the beams: one GEMM over all
        beams' queries) and the beam's own code tokens; -> [N, B, H * d]."""
        n, b = q.shape[:2]
        kvh, g = self.kv_heads, self.heads // self.kv_heads
        grouped = q.reshape(n, b, kvh, g, -1)
        shared = grouped.permute(0, 2, 1, 3, 4).reshape(n, kvh, b * g, -1)
        to_prompt = (shared @ prompt_k.transpose(-1, -2)).reshape(n, kvh, b, g, -1)
        to_prompt = to_prompt.permute(0, 2, 1, 3, 4) * attn.scaling  # [N, B, KVH, g, P]
        to_own = (grouped @ own_k.transpose(-1, -2)) * attn.scaling  # [N, B, KVH, g, t]
        allowed = torch.cat([mask[:, None, None, None, :].expand(to_prompt.shape),
                             torch.ones_like(to_own, dtype=torch.bool)], dim=-1)
        probs = softmax_attention(torch.cat([to_prompt, to_own], dim=-1),
                                  allowed).to(own_v.dtype)
        length = prompt_k.shape[2]
        from_prompt = probs[..., :length].permute(0, 2, 1, 3, 4).reshape(n, kvh, b * g, -1)
        out = (from_prompt @ prompt_v).reshape(n, kvh, b, g, -1).permute(0, 2, 1, 3, 4)
        out = out + probs[..., length:] @ own_v
        return out.reshape(n, b, -1)

    @staticmethod
    def reorder_cache(cache: list, parent: torch.Tensor) -> list:
        return [None if kv is None else (take_beams(kv[0], parent), take_beams(kv[1], parent))
                for kv in cache]

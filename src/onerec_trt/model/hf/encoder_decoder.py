"""A T5 encoder-decoder (TIGER-style) behind the model protocol.

The context is the encoder over the rendered prompt plus every decoder layer's cross-attention
keys and values of it, computed once per user and shared by all beams. Decode step t feeds the
decoder start token (t = 0) or the level-(t-1) code, attending to the beam's own earlier tokens
(with the first layer's relative position bias) and to the encoder states. Logits: the level's
code tokens plus the rest of the vocabulary (``LevelLogits``).

The encoder's relative positions count real tokens only, so a left-padded history gives what the
unpadded prompt gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from onerec_trt.model.hf.attention import LevelLogits, PromptTokens, softmax_attention
from onerec_trt.model.hf.decoder_only import take_beams
from onerec_trt.model.hf.prompt import Prompt


@dataclass
class EncodedPrompt:
    keys: list[torch.Tensor]  # per decoder layer [N, H, P, d]: cross-attention keys
    values: list[torch.Tensor]
    mask: torch.Tensor  # [N, P] real prompt tokens


class EncoderDecoderRecommender(nn.Module):
    def __init__(self, backbone: nn.Module, semantic_ids, prompt: Prompt,
                 level_ids: list[list[int]], max_history: int, decoder_start: int,
                 pad_id: int = 0):
        super().__init__()
        cfg = backbone.config
        self.backbone, self.semantic_ids, self.max_history = backbone, semantic_ids, max_history
        self.heads, self.head_dim = cfg.num_heads, cfg.d_kv
        self.scale_output = cfg.d_model ** -0.5 if getattr(cfg, "scale_decoder_outputs",
                                                           cfg.tie_word_embeddings) else None
        self.prompt = PromptTokens(backbone.shared, prompt, semantic_ids.codes, level_ids,
                                   pad_id, extra=(decoder_start,))
        self.logits = LevelLogits(cfg.vocab_size, level_ids)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[..., S, H * d] -> [..., H, S, d]"""
        return x.reshape(*x.shape[:-1], self.heads, self.head_dim).transpose(-2, -3)

    def encode_context(self, history: torch.Tensor) -> EncodedPrompt:
        n = history.shape[0]
        rows, mask = self.prompt(history)
        pos = mask.float().cumsum(1).long() - 1  # TensorRT: CumSum on floats only
        encoder = self.backbone.encoder
        first = encoder.block[0].layer[0].SelfAttention
        bucket = first._relative_position_bucket(
            pos[:, None, :] - pos[:, :, None], bidirectional=True,
            num_buckets=first.relative_attention_num_buckets,
            max_distance=first.relative_attention_max_distance)
        bias = first.relative_attention_bias(bucket).permute(0, 3, 1, 2)  # [N, H, P, P]
        allowed = mask[:, None, None, :]
        h = self.prompt.embed(rows)
        for block in encoder.block:
            layer = block.layer[0]
            attn, x = layer.SelfAttention, layer.layer_norm(h)
            scores = self._heads(attn.q(x)) @ self._heads(attn.k(x)).transpose(-1, -2) + bias
            probs = softmax_attention(scores, allowed).to(x.dtype)
            out = (probs @ self._heads(attn.v(x))).transpose(1, 2).reshape(n, rows.shape[1], -1)
            h = block.layer[-1](h + attn.o(out))
        states = encoder.final_layer_norm(h)
        keys, values = [], []
        for block in self.backbone.decoder.block:
            cross = block.layer[1].EncDecAttention
            keys.append(self._heads(cross.k(states)))
            values.append(self._heads(cross.v(states)))
        return EncodedPrompt(keys, values, mask)

    def decode_step(self, ctx: EncodedPrompt, prev_codes, step: int, cache, beams: int):
        n = ctx.mask.shape[0]
        if step == 0:
            rows = self.prompt.extra_rows.expand(n, beams)  # the decoder start token
            cache = [None] * len(self.backbone.decoder.block)
        else:
            rows = self.prompt.code_rows(step - 1, prev_codes)
        h = self.prompt.embed(rows)  # [N, B, D]
        first = self.backbone.decoder.block[0].layer[0].SelfAttention
        bias = first.compute_bias(step + 1, step + 1)[:, :, -1:, :]  # [1, H, 1, t + 1]
        new_cache = []
        for i, block in enumerate(self.backbone.decoder.block):
            layer = block.layer[0]
            attn, x = layer.SelfAttention, layer.layer_norm(h)
            q, k, v = (self._heads(proj(x).unsqueeze(2)) for proj in (attn.q, attn.k, attn.v))
            if cache[i] is not None:  # [N, B, H, t, d]
                k, v = torch.cat([cache[i][0], k], dim=3), torch.cat([cache[i][1], v], dim=3)
            probs = softmax_attention(q @ k.transpose(-1, -2) + bias, None).to(x.dtype)
            h = h + attn.o((probs @ v).reshape(n, beams, -1))
            h = h + self._cross(block.layer[1], h, ctx.keys[i], ctx.values[i], ctx.mask)
            h = block.layer[-1](h)
            new_cache.append((k, v))
        out = self.backbone.decoder.final_layer_norm(h)
        if self.scale_output is not None:
            out = out * self.scale_output
        return self.logits(self.backbone.lm_head(out), step), new_cache

    def _cross(self, layer, h, keys, values, mask):
        """Cross-attention of every beam's query to its user's encoder states (one GEMM over
        the beams: the keys are shared); T5 adds no position bias here."""
        n, b = h.shape[:2]
        attn = layer.EncDecAttention
        q = self._heads(attn.q(layer.layer_norm(h)))  # [N, H, B, d]
        probs = softmax_attention(q @ keys.transpose(-1, -2), mask[:, None, None, :])
        out = (probs.to(values.dtype) @ values).transpose(1, 2).reshape(n, b, -1)
        return attn.o(out)

    @staticmethod
    def reorder_cache(cache: list, parent: torch.Tensor) -> list:
        return [None if kv is None else (take_beams(kv[0], parent), take_beams(kv[1], parent))
                for kv in cache]

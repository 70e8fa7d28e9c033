"""What the adapters share: a compact token embedding, the level logits with the rest of the
vocabulary as one more logit, and attention written with plain matmuls (no cache objects, no
mask helpers: the exported graph traces them as they read)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from onerec_trt.model.logexp import logsumexp

DEAD = float("-inf")
VOCAB_CHUNK = 16384  # tokens per rest-of-vocabulary chunk: [N, B, chunk] passes 2^31 elements
# only past N x B = 131,072 (the whole [N, B, 151,936] of Qwen3 passes it at 14,134)


class CompactEmbedding(nn.Module):
    """The rows of a token embedding that a prompt or a decode step can read (template tokens
    and code tokens), so a 150k-token table never reaches the graph; ``index[token id]`` is the
    row of a token in ``weight``. Not an ``nn.Embedding``: the exporter's ``small_tables``
    shortens item tables, which are indexed by item id; this one is indexed by token row."""

    def __init__(self, embedding: nn.Embedding, used: list[int]):
        super().__init__()
        used = sorted(set(used))
        self.weight = nn.Parameter(embedding.weight.detach()[used].clone(), requires_grad=False)
        index = torch.zeros(embedding.num_embeddings, dtype=torch.long)
        index[torch.as_tensor(used)] = torch.arange(len(used))
        self.register_buffer("index", index, persistent=False)

    def rows(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Token ids -> compact rows (done once on the constant tables, not per request)."""
        return self.index[token_ids]

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(rows, self.weight)


class PromptTokens(nn.Module):
    """The template and the catalogue as compact embedding rows (``embed``'s): each item's
    rendering, the template's literal prefix and suffix, each level's code tokens (plus a pad
    row for the rest-of-vocabulary code, which only dead beams feed back) and ``extra`` tokens
    (T5's decoder start); ``forward`` renders left-padded histories into the prompt."""

    def __init__(self, embedding: nn.Embedding, prompt, codes: np.ndarray,
                 level_ids: list[list[int]], pad_id: int, extra: tuple[int, ...] = ()):
        super().__init__()
        table = prompt.item_table(codes, level_ids, pad_id)
        used = np.unique(np.concatenate([[pad_id, *extra], prompt.prefix, prompt.suffix,
                                         table.ravel(), *level_ids]).astype(np.int64))
        self.embed = CompactEmbedding(embedding, used.tolist())
        rows = self.embed.rows
        self.register_buffer("item_rows", rows(torch.as_tensor(table)))
        self.register_buffer("prefix_rows", rows(torch.as_tensor(prompt.prefix, dtype=torch.long)))
        self.register_buffer("suffix_rows", rows(torch.as_tensor(prompt.suffix, dtype=torch.long)))
        self.register_buffer("extra_rows", rows(torch.as_tensor(extra, dtype=torch.long)))
        for t, ids in enumerate(level_ids):
            self.register_buffer(f"code_rows{t}", rows(torch.as_tensor([*ids, pad_id])))

    def forward(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """history [N, S] -> (prompt rows [N, P], real tokens [N, P])."""
        n, s = history.shape
        width = self.item_rows.shape[1]
        items = self.item_rows[history].reshape(n, -1)  # [N, S * T]
        real = (history > 0).unsqueeze(-1).expand(n, s, width).reshape(n, -1)
        prefix, suffix = self.prefix_rows.expand(n, -1), self.suffix_rows.expand(n, -1)
        mask = torch.cat([torch.ones_like(prefix, dtype=torch.bool), real,
                          torch.ones_like(suffix, dtype=torch.bool)], dim=1)
        return torch.cat([prefix, items, suffix], dim=1), mask

    def code_rows(self, level: int, codes: torch.Tensor) -> torch.Tensor:
        """Level-``level`` codes -> their rows."""
        return getattr(self, f"code_rows{level}")[codes]


class LevelLogits(nn.Module):
    """Full-vocabulary logits -> [..., V_t + 1]: the level's code tokens, then the logsumexp of
    every other token. Its log-softmax is the full vocabulary's log-probability of each code,
    what transformers' beam search scores with, while the beam sees V_t + 1 values only; the
    last code is never a child in the trie."""

    def __init__(self, vocab_size: int, level_ids: list[list[int]], chunk: int = VOCAB_CHUNK):
        super().__init__()
        self.levels, self.chunk = len(level_ids), chunk
        for t, ids in enumerate(level_ids):
            other = torch.ones(vocab_size, dtype=torch.bool)
            other[torch.as_tensor(ids)] = False
            self.register_buffer(f"ids{t}", torch.as_tensor(ids, dtype=torch.long))
            self.register_buffer(f"other{t}", other)

    def forward(self, logits: torch.Tensor, t: int) -> torch.Tensor:
        codes = logits.index_select(-1, getattr(self, f"ids{t}")).float()
        return torch.cat([codes, self.rest(logits, t)], dim=-1)

    def rest(self, logits: torch.Tensor, t: int) -> torch.Tensor:
        """[..., 1] the logsumexp of the tokens that are not level-t codes, per vocabulary
        chunk of ``chunk`` tokens: no fp32 [..., vocabulary] copy (T1 of issue 28)."""
        other, width = getattr(self, f"other{t}"), logits.shape[-1]
        parts = []
        for start in range(0, width, self.chunk):
            size = min(self.chunk, width - start)
            piece = torch.where(other[start:start + size], logits[..., start:start + size].float(),
                                DEAD)
            parts.append(logsumexp(piece, -1, keepdim=True))
        return parts[0] if len(parts) == 1 else logsumexp(torch.cat(parts, -1), -1, keepdim=True)


def softmax_attention(scores: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """Softmax in fp32 over the last axis; disallowed keys get the dtype's lowest value (as
    transformers' masks do), so a query with no allowed key gets a uniform row, not NaN."""
    scores = scores.float()
    if allowed is not None:
        scores = scores.masked_fill(~allowed, torch.finfo(torch.float32).min)
    return torch.softmax(scores, dim=-1)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding (the half-split layout of Llama and Qwen)."""
    half = x.shape[-1] // 2
    turned = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + turned * sin

"""What the pipeline's stages need from a model: the contract a user's own OneRec-like torch
model implements to go through analysis, export, calibration and verification.

- ``semantic_ids``: the tokenizer (``codes`` per item, ``trie``, ``codebook_sizes``).
- ``encode_context(history [N, S]) -> ctx``: computed once per request, shared by all beams;
  ``ctx.mask`` [N, S] marks real history items.
- ``decode_step(ctx, prev_codes [N, B] | None, step, cache, beams) -> (logits [N, B, V_step],
  cache)``: one decode step for B beams (``prev_codes`` is None at step 0).
- ``reorder_cache(cache, parent [N, B]) -> cache``: each beam takes its parent's cache.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class GenerativeRecommender(Protocol):
    semantic_ids: Any

    def encode_context(self, history: torch.Tensor) -> Any: ...

    def decode_step(self, ctx: Any, prev_codes: torch.Tensor | None, step: int, cache: Any,
                    beams: int) -> tuple[torch.Tensor, Any]: ...

    def reorder_cache(self, cache: Any, parent: torch.Tensor) -> Any: ...

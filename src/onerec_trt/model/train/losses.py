"""Training losses: per-level cross-entropy, the auxiliary item softmax, and the decoder's
distillation from that softmax."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from onerec_trt.model.layers import at_positions
from onerec_trt.model.onerec import OneRecModel


def sample_positions(targets: torch.Tensor, count: int, generator=None) -> torch.Tensor:
    """[N, count] random positions with a real target (padding only where a row has fewer)."""
    noise = torch.rand(targets.shape, generator=generator)
    noise = noise.masked_fill(targets == 0, -1.0)
    return noise.topk(min(count, targets.shape[1]), dim=1).indices


def code_marginals(item_probs: torch.Tensor, item_codes: torch.Tensor,
                   target_codes: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """The item distribution seen level by level, as teacher forcing sees it.

    item_probs [P, I] over model items (column 0, padding, is 0); item_codes [I, L];
    target_codes [P, L]. Level l: the distribution of code l among the items that share the
    target's first l codes, i.e. what the decoder's level-l softmax would be if it generated
    items with ``item_probs``. Returns one [P, V_l] tensor per level (rows sum to 1).
    """
    match = torch.ones_like(item_probs, dtype=torch.bool)
    out = []
    for level, size in enumerate(sizes):
        mass = item_probs * match
        marginal = item_probs.new_zeros(item_probs.shape[0], size)
        marginal.index_add_(1, item_codes[:, level], mass)
        out.append(marginal / marginal.sum(-1, keepdim=True).clamp_min(1e-12))
        match = match & (item_codes[None, :, level] == target_codes[:, level, None])
    return out


def distillation_loss(level_logits: list[torch.Tensor], teacher_logits: torch.Tensor,
                      item_codes: torch.Tensor, target_codes: torch.Tensor) -> torch.Tensor:
    """Soft cross-entropy of each level's logits [P, V_l] against ``code_marginals`` of the
    (detached) teacher's item softmax [P, I], summed over levels."""
    teacher = teacher_logits.detach().float()
    teacher[:, 0] = float("-inf")  # padding is not an item
    targets = code_marginals(teacher.softmax(-1), item_codes, target_codes,
                             [lg.shape[-1] for lg in level_logits])
    return sum(-(q * F.log_softmax(lg.float(), -1)).sum(-1).mean()
               for q, lg in zip(targets, level_logits, strict=True))


def training_loss(model: OneRecModel, inputs: torch.Tensor, targets: torch.Tensor,
                  target_codes: torch.Tensor, decoder_targets: int = 0,
                  distill: float = 0.0, item_codes: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy over the semantic-ID levels (+ the auxiliary next-item softmax).

    With ``decoder_targets`` > 0 the decoder predicts that many sampled positions per window
    (the context processor still sees, and the auxiliary loss still uses, every position).
    With ``distill`` > 0 the decoder also learns, with that weight, the auxiliary softmax's
    item distribution at its positions (``distillation_loss``; ``item_codes`` [I, L] needed):
    the item softmax ranks items seen a few times far better than the code heads learn to.
    """
    positions = sample_positions(targets, decoder_targets) if decoder_targets else None
    logits, h = model(inputs, target_codes, positions)
    chosen, codes = at_positions(targets, positions), at_positions(target_codes, positions)
    valid = chosen != 0
    parts = {}
    loss = torch.zeros((), device=inputs.device)
    for lvl, lg in enumerate(logits):
        ce = F.cross_entropy(lg[valid], codes[..., lvl][valid])
        parts[f"level{lvl + 1}"] = float(ce.detach())
        loss = loss + ce
    if model.cfg.aux_item_loss:
        mask = targets != 0
        ce = F.cross_entropy(model.item_logits(h[mask]), targets[mask])
        parts["aux_item"] = float(ce.detach())
        loss = loss + model.cfg.aux_item_loss * ce
    if distill:
        if item_codes is None:
            raise ValueError("distillation needs item_codes")
        states = at_positions(h, positions)
        kd = distillation_loss([lg[valid] for lg in logits], model.item_logits(states[valid]),
                               item_codes, codes[valid])
        parts["distill"] = float(kd.detach())
        loss = loss + distill * kd
    return loss, parts

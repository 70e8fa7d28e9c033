"""What a teacher's kind brings to ``quantize --qad`` (``qad.py`` runs the distillation): its
training windows as batches, the logits the KL compares, and how the student's folder is
written. ``qad.py`` builds the native model's task, ``qad_hf.py`` an imported model's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class QadTask:
    windows: int  # training windows, held-out ones included
    batch_size: int  # windows per step
    batch: Callable[[np.ndarray], Any]  # window indices -> a batch
    epoch: Callable[[np.ndarray, np.random.Generator], list[np.ndarray]]  # one epoch's index
    # batches of the stepped windows
    logits: Callable[[torch.nn.Module, Any], list[torch.Tensor]]  # a model's logits at the
    # batch's scored positions, one tensor [positions, classes] per distribution compared
    save: Callable[[Path, dict[str, torch.Tensor], dict], dict]  # (folder, the student's state
    # without quantizers, training record) -> the student's manifest fields beyond the files
    loss: str  # what the record calls the loss

    def kl(self, student: torch.nn.Module, teacher: torch.nn.Module, batch) -> torch.Tensor:
        """KL(teacher || student) of each compared distribution, mean over its positions,
        summed over the distributions (teacher forcing)."""
        with torch.no_grad():
            t_logits = self.logits(teacher, batch)
        s_logits = self.logits(student, batch)
        return sum(F.kl_div(F.log_softmax(s.float(), -1), F.log_softmax(t.float(), -1),
                            log_target=True, reduction="batchmean")
                   for s, t in zip(s_logits, t_logits, strict=True))


def shuffled(batch_size: int) -> Callable[[np.ndarray, np.random.Generator], list[np.ndarray]]:
    """One epoch's batches: the windows shuffled, cut into ``batch_size`` each."""

    def epoch(idx: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        perm = idx[rng.permutation(len(idx))]
        return [perm[i:i + batch_size] for i in range(0, len(perm), batch_size)]

    return epoch

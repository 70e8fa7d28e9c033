"""The one training loop of both architectures (``--arch onerec`` and ``--arch qwen3``).

``fit`` owns what a run means: AdamW steps with gradients clipped at 1.0, the learning rate of a
``BudgetedCosine`` (linear warm-up, then a cosine that ends with the planned epochs or with the
``--max-minutes`` budget when it cannot hold them, re-estimated as the run goes: ``BudgetFit``),
a validation every ``eval_every`` epochs (and after the last), the best state by validation
Recall@10 + NDCG@10, and early stopping on their smoothed trend (``SmoothedStopping``); with
``--fp8-aware`` an ``FP8Phase`` (``fp8_phase.py``) called at step boundaries trains the end of
the run in FP8, limits the best state to that phase and early stopping to its frozen end. What
differs between the models comes in a ``Trainee``: the model, its optimizer, one epoch's
batches, a batch's loss and the validation.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from onerec_trt.model.train.config import TrainConfig
from onerec_trt.model.train.fp8_phase import NoFP8Phase, fp8_phase
from onerec_trt.model.train.schedule import (
    USEFUL_STEPS,
    WARN_AFTER,
    BudgetedCosine,
    SmoothedStopping,
)
from onerec_trt.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass
class Trainee:
    """The model-specific parts of a training run."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    steps_per_epoch: int  # the batches ``batches`` yields (the cosine's plan is epochs x this)
    batches: Callable[[], Iterable[Any]]  # one epoch's batches, shuffled when called
    loss: Callable[[Any], torch.Tensor]  # one batch's training loss
    validate: Callable[[], dict]  # validation metrics: recall@10, ndcg@10, ...


@dataclass
class FitResult:
    """What ``fit`` reports for training.json; ``model`` holds the best state (the trainee's
    model, or with ``--fp8-aware`` a plain copy of it, without quantizers)."""

    epochs: list[dict]  # one record per validation
    best_epoch: dict
    budget_warning: str | None  # the budget held under USEFUL_STEPS steps (None: it did not)
    model: torch.nn.Module
    fp8_aware: dict | None = None  # the FP8 phase's record (None: --fp8-aware off)


# what a budget under USEFUL_STEPS means, by the option that set it
SHORT_BUDGET = {"--max-minutes": "expect a model near popularity",
                "--qad": "expect the student to stay near the teacher's PTQ"}


class BudgetFit:
    """Re-estimates ``schedule`` against the wall-time budget and says what changed: the
    first shortening of the cosine, and a budget too short for a useful model (``warning``)."""

    def __init__(self, schedule: BudgetedCosine, max_minutes: float, t_train: float,
                 flag: str = "--max-minutes"):
        self.schedule, self.max_minutes, self.t_train = schedule, max_minutes, t_train
        self.flag = flag
        self.shortened, self.warning, self.retracted = False, None, False

    def when_due(self, steps_done: int) -> None:
        seconds = time.time() - self.t_train
        if self.schedule.estimate_due(seconds) or seconds >= self.schedule.budget_seconds:
            self.fit(steps_done)

    def fit(self, steps_done: int) -> None:
        s, seconds = self.schedule, time.time() - self.t_train
        s.fit_budget(steps_done, seconds)
        if self.warning and s.total_steps >= USEFUL_STEPS:  # the machine got faster
            log.info(f"the budget now holds about {s.total_steps:,} steps: the warning above "
                     f"no longer applies")
            self.warning, self.retracted = None, True
        if s.total_steps >= s.planned:
            return
        if not self.shortened:
            self.shortened = True
            log.info(f"the {self.max_minutes:g}-min budget cannot hold {s.planned:,} steps: the "
                     f"cosine now ends at step {s.total_steps:,}, warm-up {s.warmup:,} steps "
                     f"(re-estimated as the run goes)")
        # judged once a tenth of the budget is spent (the first seconds' pace is too slow);
        # said once, withdrawn at most once
        if (self.warning is None and not self.retracted and s.total_steps < USEFUL_STEPS
                and seconds >= WARN_AFTER * s.budget_seconds):
            minutes = math.ceil(self.max_minutes * USEFUL_STEPS / max(1, s.total_steps))
            self.warning = (f"the {self.max_minutes:g}-min budget holds about "
                            f"{s.total_steps:,} steps on this machine, under {USEFUL_STEPS:,}: "
                            f"{SHORT_BUDGET[self.flag]}; give {self.flag} {minutes} or more")
            log.warning("warning: " + self.warning)


def _limit_reached(schedule: BudgetedCosine, cfg: TrainConfig, steps_done: int) -> bool:
    return schedule.finished(steps_done) or (cfg.max_steps is not None
                                             and steps_done >= cfg.max_steps)


def _end_step(schedule: BudgetedCosine, cfg: TrainConfig) -> int:
    return min(schedule.total_steps, cfg.max_steps or schedule.total_steps)


def _train_epoch(trainee: Trainee, schedule: BudgetedCosine, cfg: TrainConfig, steps_done: int,
                 bar, budget: BudgetFit, phase: NoFP8Phase) -> tuple[list[float], int]:
    """One pass over the batches ``bar`` iterates, ending early where the schedule or
    ``max_steps`` ends -> (losses, steps done in all)."""
    model, opt = trainee.model, trainee.optimizer
    losses = []
    for step, batch in enumerate(bar):
        loss = trainee.loss(batch)
        for group in opt.param_groups:
            group["lr"] = schedule.lr(steps_done)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        steps_done += 1
        budget.when_due(steps_done)
        phase.after_step(model, trainee.loss, batch, steps_done, _end_step(schedule, cfg))
        if _limit_reached(schedule, cfg, steps_done):
            break
    return losses, steps_done


def fit(trainee: Trainee, cfg: TrainConfig, t0: float, progress: bool = True) -> FitResult:
    """Train ``trainee.model`` under ``cfg`` and leave it in its best validation state (eval
    mode). ``t0``: when the run began (the budget and the minutes count from there)."""
    model = trainee.model
    stopping = SmoothedStopping(cfg.patience)
    t_train = time.time()
    schedule = BudgetedCosine(cfg.lr, cfg.warmup_steps, cfg.epochs * trainee.steps_per_epoch,
                              cfg.max_minutes * 60 - (t_train - t0))
    budget = BudgetFit(schedule, cfg.max_minutes, t_train, cfg.budget_flag)
    phase = fp8_phase(cfg.fp8_aware)
    best, best_state, epochs, steps_done = -1.0, None, [], 0
    for epoch in range(cfg.epochs):
        model.train()
        bar = progress_bar(trainee.batches(), total=trainee.steps_per_epoch,
                           desc=f"epoch {epoch + 1}", disable=not progress, leave=False)
        losses, steps_done = _train_epoch(trainee, schedule, cfg, steps_done, bar, budget,
                                          phase)
        budget.fit(steps_done)
        ended = _limit_reached(schedule, cfg, steps_done) or epoch + 1 == cfg.epochs
        if not ended and (epoch + 1) % cfg.eval_every:
            continue
        start = time.time()
        model.eval()
        with phase.reference(model):
            metrics = trainee.validate()
        validation_s = time.time() - start
        score = metrics["recall@10"] + metrics["ndcg@10"]
        minutes = (time.time() - t0) / 60
        epochs.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "minutes": minutes,
                       "steps": steps_done, "lr": schedule.lr(steps_done - 1),
                       **{f"valid_{k}": v for k, v in metrics.items()}})
        phase.tag(epochs[-1])
        log.info(f"epoch {epoch + 1}: loss {np.mean(losses):.4f}  valid recall@10 "
                 f"{metrics['recall@10']:.4f} ndcg@10 {metrics['ndcg@10']:.4f}  "
                 f"(step {steps_done:,}/{schedule.total_steps:,}, {minutes:.1f} min, "
                 f"validation {validation_s:.0f}s)")
        if score > best and phase.may_select():
            best, best_state = score, copy.deepcopy(model.state_dict())
        if stopping.update(score, schedule.progress(steps_done)) and phase.may_stop():
            log.info(f"early stop: the mean of the last {stopping.window} validation scores has "
                     f"not improved for {stopping.patience} evaluations")
            break
        if ended:
            break
    model.load_state_dict(best_state)
    model.eval()
    candidates = [e for e in epochs if e.get("fp8_phase", True)]
    best_epoch = max(candidates, key=lambda e: e["valid_recall@10"] + e["valid_ndcg@10"])
    return FitResult(epochs, best_epoch, budget.warning, phase.finish(model), phase.record())

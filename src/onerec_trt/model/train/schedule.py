"""The learning-rate schedule and the stopping rule of a training run.

``BudgetedCosine``: linear warm-up, then a cosine to zero over the planned steps; when the
wall-time budget cannot hold the planned steps, the cosine is shortened to the steps it can
hold, re-estimated at every epoch from the pace of the last epoch (validation included: on a
shared machine the pace changes as other jobs come and go, so it may lengthen again, never
past the plan), so a run ends at the bottom of its cosine instead of being cut off halfway
down it. The estimate is also made within an epoch (every ``budget_seconds / ESTIMATES``
seconds), so a large epoch on a slow machine cannot run past the budget: a run ends at most one
validation after it. The warm-up never exceeds ``WARMUP_SHARE`` of the steps the budget holds
(a 1-minute budget holding 20 steps must not spend 100 of them warming up). Nothing changes
while the budget holds the plan, so such a run is deterministic.

``SmoothedStopping``: early stopping on the mean of the last few validation scores, and never
before a given share of the schedule: a few hundred validation users move Recall@10 by about
+-0.005 between epochs, enough to stop a single-score rule on noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

WARMUP_SHARE = 0.05  # the most of the budgeted steps the warm-up may take
ESTIMATES = 30  # pace estimates a budget holds at most (besides those at epoch ends)
FIRST_ESTIMATE_S = 3.0  # the first estimate, once the pace is measurable
USEFUL_STEPS = 1000  # a budget holding fewer steps gives a model near popularity
WARN_AFTER = 0.1  # share of the budget spent before the pace is trusted for that warning



@dataclass
class BudgetedCosine:
    peak_lr: float
    warmup_steps: int
    total_steps: int  # where the cosine ends: the plan, or what the budget holds
    budget_seconds: float
    planned: int = 0  # the plan (set from total_steps)
    _last: tuple[int, float] = (0, 0.0)  # (steps, seconds) at the previous estimate

    def __post_init__(self) -> None:
        self.planned = self.planned or self.total_steps

    @property
    def warmup(self) -> int:
        """The warm-up steps in effect: ``warmup_steps``, at most ``WARMUP_SHARE`` of the
        cosine when the budget has shortened it."""
        if self.total_steps >= self.planned:
            return self.warmup_steps
        return max(1, min(self.warmup_steps, int(self.total_steps * WARMUP_SHARE)))

    def lr(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based)."""
        warm = min(1.0, (step + 1) / max(1, self.warmup))
        progress = min(step / max(1, self.total_steps), 1.0)
        return self.peak_lr * warm * 0.5 * (1 + math.cos(math.pi * progress))

    def fit_budget(self, steps_done: int, seconds: float) -> bool:
        """End the cosine where the rest of the budget runs out at the pace since the previous
        call (``seconds`` since training began, ``steps_done`` steps), never past the plan;
        True if that moved it."""
        last_steps, last_seconds = self._last
        if steps_done <= last_steps or seconds <= last_seconds:
            return False
        per_step = (seconds - last_seconds) / (steps_done - last_steps)
        self._last = (steps_done, seconds)
        affordable = steps_done + int(max(0.0, self.budget_seconds - seconds) / per_step)
        total = min(self.planned, max(steps_done, affordable))
        moved, self.total_steps = total != self.total_steps, total
        return moved

    def estimate_due(self, seconds: float) -> bool:
        """Whether to re-estimate within an epoch, ``seconds`` into training."""
        last = self._last[1]
        step = max(FIRST_ESTIMATE_S, self.budget_seconds / ESTIMATES)
        return seconds - last >= (FIRST_ESTIMATE_S if last == 0 else step)

    def progress(self, steps_done: int) -> float:
        return min(steps_done / max(1, self.total_steps), 1.0)

    def finished(self, steps_done: int) -> bool:
        return steps_done >= self.total_steps


@dataclass
class SmoothedStopping:
    patience: int  # evaluations without a better smoothed score (0 = never stop early)
    window: int = 3  # scores averaged
    min_progress: float = 0.5  # share of the schedule before stopping is considered
    scores: list[float] = field(default_factory=list)
    best_smoothed: float = -math.inf
    bad: int = 0

    def update(self, score: float, progress: float) -> bool:
        """Record a validation score; True when the run should stop."""
        self.scores.append(score)
        smoothed = sum(self.scores[-self.window:]) / len(self.scores[-self.window:])
        if smoothed > self.best_smoothed:
            self.best_smoothed, self.bad = smoothed, 0
        else:
            self.bad += 1
        return self.patience > 0 and self.bad >= self.patience and progress >= self.min_progress

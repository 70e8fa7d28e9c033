"""Training options chosen from the data set: what ``onerec-trt train`` does with the options a
user leaves out.

Each rule reads one property of the training part (never the test targets) and is anchored in
a measured run (docs/model.md, "Training defaults"):
- history length: the 95th percentile of the sequence lengths, at least 50, at most the
  preset's (200 for ``small``);
- codes a level: 256, or for a catalogue over 256^2 items the smallest power of two whose
  square holds it (two levels address every item; the last one tells apart the few that
  share them). On Beauty's validation users 32 or 64 codes did no better than 256;
- sparse data (10% or more of the validation targets are items seen fewer than 10 times in
  training, the targets the semantic-ID decoder misses; Beauty: 38%, MovieLens-1M: under 1%):
  prefix-input embeddings and distillation weight 3, the options that lifted Beauty's
  validation Recall@10 from 0.086 to 0.104;
- epochs: 30, or enough for 2,000 optimizer steps on a small data set (the 200 warm-up steps
  stay a small part of the schedule); the wall-time budget shortens the cosine when it
  cannot hold them (``model/schedule.py``);
- warm-up: 200 steps, at most 5% of the schedule;
- evaluation: every epoch, or every k-th so that a run makes about 30 evaluations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

RARE_OCCURRENCES = 10  # items seen fewer times in training are "rare" targets
SPARSE_RARE_SHARE = 0.10  # data sets with at least this share of rare validation targets
CODEBOOK = 256
SPARSE_DISTILL = 3.0
BASE_EPOCHS, MIN_STEPS, MAX_EPOCHS = 30, 2000, 300
WARMUP_STEPS, MAX_WARMUP_SHARE = 200, 0.05
EVALUATIONS = 30
MIN_HISTORY = 50

# what ``choose`` may set: TrainOptions fields, then TrainConfig fields
MODEL_CHOICES = ("max_history", "codebook")
TRAIN_CHOICES = ("prefix_inputs", "distill", "epochs", "warmup_steps", "eval_every")
CHOICES = MODEL_CHOICES + TRAIN_CHOICES


@dataclass(frozen=True)
class DataProfile:
    """The properties of a data set the defaults depend on (training part, validation targets)."""

    users: int
    items: int
    interactions: int
    p95_length: int
    rare_target_share: float  # validation targets seen < RARE_OCCURRENCES times in training

    @classmethod
    def of(cls, split, num_items: int) -> DataProfile:
        """From a ``LeaveOneOut`` split (a sequence is its training part and two targets)."""
        counts = np.bincount(np.concatenate(split.train) if split.train else np.zeros(0, int),
                             minlength=num_items + 1)
        rare = float(np.mean(counts[split.valid_targets] < RARE_OCCURRENCES))
        lengths = np.array([len(s) + 2 for s in split.train])
        return cls(users=split.num_users, items=num_items, interactions=int(lengths.sum()),
                   p95_length=int(np.percentile(lengths, 95)), rare_target_share=rare)

    @property
    def sparse(self) -> bool:
        return self.rare_target_share >= SPARSE_RARE_SHARE


@dataclass(frozen=True)
class Choice:
    name: str  # option field (TrainOptions or TrainConfig)
    value: object
    reason: str
    given: bool = False  # set by the user, not chosen


def _history(profile: DataProfile, preset_history: int) -> Choice:
    value = int(min(preset_history, max(MIN_HISTORY, math.ceil(profile.p95_length / 10) * 10)))
    return Choice("max_history", value, f"95% of the sequences have at most "
                                        f"{profile.p95_length} items (kept in "
                                        f"{min(MIN_HISTORY, preset_history)}..{preset_history})")


def _sparse_choices(profile: DataProfile) -> list[Choice]:
    share = (f"{profile.rare_target_share:.0%} of validation targets seen < {RARE_OCCURRENCES}"
             f" times in training")
    if profile.sparse:
        why = f"sparse: {share} (sparse from {SPARSE_RARE_SHARE:.0%})"
        return [Choice("prefix_inputs", True, why + "; rare items borrow their cluster's input"),
                Choice("distill", SPARSE_DISTILL, why + "; the decoder learns the item softmax")]
    why = f"dense: {share} (sparse from {SPARSE_RARE_SHARE:.0%})"
    return [Choice("prefix_inputs", False, why), Choice("distill", 0.0, why)]


def _codebook(profile: DataProfile) -> Choice:
    value = max(CODEBOOK, 1 << math.ceil(math.log2(math.sqrt(profile.items))))
    return Choice("codebook", value, f"{profile.items:,} items: {value} x {value} prefixes "
                                     f"address every item (at least {CODEBOOK})")


def _schedule(steps_per_epoch: int, epochs_given: int | None) -> list[Choice]:
    epochs = epochs_given or min(MAX_EPOCHS, max(BASE_EPOCHS,
                                                 math.ceil(MIN_STEPS / steps_per_epoch)))
    why_epochs = (f"{BASE_EPOCHS}" if epochs == BASE_EPOCHS else
                  f"{MIN_STEPS:,} steps at {steps_per_epoch} an epoch")
    total = epochs * steps_per_epoch
    warmup = max(1, min(WARMUP_STEPS, int(total * MAX_WARMUP_SHARE)))
    every = max(1, math.ceil(epochs / EVALUATIONS))
    return [Choice("epochs", epochs, f"{why_epochs}; the time budget shortens the cosine if it "
                                     f"cannot hold {total:,} steps"),
            Choice("warmup_steps", warmup, f"{WARMUP_STEPS}, at most "
                                           f"{MAX_WARMUP_SHARE:.0%} of {total:,} steps"),
            Choice("eval_every", every, f"about {EVALUATIONS} validations a run")]


def choose(profile: DataProfile, steps_per_epoch, given: dict[str, object],
           preset_history: int = 200) -> list[Choice]:
    """Every option in CHOICES: the user's value where ``given`` has it, else the rule's.
    ``steps_per_epoch(max_history)`` counts optimizer steps for a history length."""
    choices = {c.name: c for c in [_history(profile, preset_history), _codebook(profile),
                                   *_sparse_choices(profile)]}
    for name, value in given.items():
        if name in choices:
            choices[name] = Choice(name, value, "given", given=True)
    steps = steps_per_epoch(choices["max_history"].value)
    for c in _schedule(steps, given.get("epochs")):
        choices[c.name] = (Choice(c.name, given[c.name], "given", given=True)
                           if c.name in given else c)
    return [choices[name] for name in CHOICES]


def apply(opts, choices: list[Choice]):
    """``opts`` (TrainOptions) with the choices filled in."""
    values = {c.name: c.value for c in choices}
    model = {k: values[k] for k in MODEL_CHOICES}
    train = {k: values[k] for k in TRAIN_CHOICES}
    return replace(opts, **model, train=replace(opts.train, **train))


def describe(choices: list[Choice]) -> str:
    width = max(len(c.name) for c in choices)
    lines = ["options (chosen from the data unless given; override any with its --flag):"]
    for c in choices:
        value = "on" if c.value is True else "off" if c.value is False else f"{c.value:g}" \
            if isinstance(c.value, float) else str(c.value)
        lines.append(f"  {c.name.replace('_', '-'):<{width}}  {value:<5} {c.reason}")
    return "\n".join(lines)

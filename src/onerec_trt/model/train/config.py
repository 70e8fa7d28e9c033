"""What training needs before it starts: the data both architectures read (``DataOptions``),
the loop's hyperparameters (``TrainConfig``) and the least data that can make a model
(``require_trainable``). The train stage (``stage.py``) and
the trainers (``onerec.py``, ``qwen3.py``) use them; this module imports none of them, and
nothing heavy at load time."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from onerec_trt.errors import user_error

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class DataOptions:
    """The training data, as ``onerec-trt train`` reads it for either ``--arch`` (the options
    of both stages extend it; keyword-only, so theirs may come first)."""

    dataset: str
    data: str | None = None  # the dataset's file
    columns: str | None = None  # for --dataset table: user=COL,item=COL[,time=COL]
    min_user: int = 3  # users with fewer interactions are dropped (leave-one-out needs 3)
    min_item: int = 1
    kcore: int = 0

    def check(self) -> None:
        for name in ("min_user", "min_item", "kcore"):
            if getattr(self, name) < 0:
                raise user_error(f"--{name.replace('_', '-')} must not be negative, "
                                 f"got {getattr(self, name)}")

    def filters(self) -> dict:
        return {"min_user": self.min_user, "min_item": self.min_item, "kcore": self.kcore}

    def load(self):
        """The filtered dataset (described in the log), refused when it cannot make a model."""
        from onerec_trt.data import load_dataset

        data = load_dataset(self.dataset, self.data, columns=self.columns, **self.filters())
        log.info(data.describe())
        require_trainable(data)
        return data

    def data_path(self) -> str | None:
        """``data`` resolved, as training.json records it."""
        return str(Path(self.data).resolve()) if self.data else None


@dataclass
class TrainConfig:
    """The training loop's hyperparameters."""

    epochs: int = 30  # the cosine spans them, or the time budget when it cannot hold them
    batch_size: int = 32  # windows per optimizer step: more steps beat bigger batches on a CPU
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    patience: int = 6  # evaluations without a better smoothed score (0 = never stop early)
    eval_users: int = 1500  # validation users scored per evaluation
    eval_beam: int = 20
    eval_every: int = 1  # epochs between validations (the last epoch is always validated)
    max_minutes: float = 45.0  # the cosine ends, and the best checkpoint is kept, by then
    decoder_targets: int = 48  # sampled target positions per window for the decoder (0 = all)
    max_steps: int | None = None  # stop after this many optimizer steps (tests, smoke runs)
    prefix_inputs: bool = False  # item inputs share semantic-ID prefix embeddings (folded at end)
    distill: float = 0.0  # weight of the decoder's distillation from the auxiliary item softmax
    seed: int = 0
    fp8_aware: float = 0.0  # share of the budgeted steps trained in FP8 at the end (0 = off)
    budget_flag: str = "--max-minutes"  # the option a short-budget warning names (QAD: --qad)


    def check_fp8_aware(self) -> None:
        if not 0 <= self.fp8_aware <= 1:
            raise user_error(f"--fp8-aware takes a share of the training steps in [0, 1], got "
                             f"{self.fp8_aware:g}", "e.g. --fp8-aware 0.25 (the default share)")


def require_positive(options: object, names: tuple[str, ...]) -> None:
    """Each named option (unset: None, skipped) must be above 0; the error names the flag."""
    for name in names:
        value = getattr(options, name)
        if value is not None and value <= 0:
            raise user_error(f"--{name.replace('_', '-')} must be positive, got {value}")


def require_trainable(data) -> None:
    """Refuse data that cannot make a model, before any work: fewer than ``MIN_ITEMS`` items,
    or no user with a training window (an input item and a next item to predict, besides the
    validation and test targets the leave-one-out split keeps)."""
    from onerec_trt.data import MIN_ITEMS, MIN_SEQUENCE

    users = len(data.sequences)
    longer = sum(len(s) > MIN_SEQUENCE for s in data.sequences)
    if data.num_items >= MIN_ITEMS and longer:
        return
    raise user_error(f"{data.name} has {data.num_items:,} item(s) and {users:,} user(s), "
                     f"{longer:,} with more than {MIN_SEQUENCE} interactions: training needs at "
                     f"least {MIN_ITEMS} items and one user with {MIN_SEQUENCE + 1} interactions",
                     "each user's last two items are the validation and test targets; the "
                     "items before them are what the model learns from")

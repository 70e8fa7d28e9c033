"""Training: next-item semantic-ID prediction with teacher forcing at every history position.

AdamW, linear warm-up then a cosine that ends with the run (the planned epochs, or the
wall-time budget when it cannot hold them), the best checkpoint by validation Recall@10 +
NDCG@10 (beam search on a fixed sample of validation users), early stopping on their smoothed
trend; deterministic for a seed and thread count when the budget holds the plan.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict

import numpy as np
import torch

from onerec_trt.data import Dataset, LeaveOneOut, pad_histories
from onerec_trt.errors import user_error
from onerec_trt.metrics import recall_ndcg
from onerec_trt.model.checkpoint import ModelBundle
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.generate import Generator, beam_search
from onerec_trt.model.onerec import OneRecModel, PrefixEmbedding
from onerec_trt.model.tokenizer import SemanticIds, TokenizerConfig, build_tokenizer
from onerec_trt.model.train.config import TrainConfig, require_trainable
from onerec_trt.model.train.losses import training_loss
from onerec_trt.model.train.schedule import (
    USEFUL_STEPS,
    WARN_AFTER,
    BudgetedCosine,
    SmoothedStopping,
)
from onerec_trt.progress import progress_bar


def training_windows(train: list[np.ndarray], length: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cut each sequence into windows of inputs x[a:e] and next-item targets x[a+1:e+1],
    from the end backwards, so every position is a target exactly once."""
    windows = []
    for seq in train:
        end = len(seq) - 1
        while end > 0:
            start = max(0, end - length)
            windows.append((seq[start:end], seq[start + 1:end + 1]))
            end = start
    return windows


def _batch(windows, idx, codes: torch.Tensor):
    length = max(len(windows[i][0]) for i in idx)
    inputs = torch.from_numpy(pad_histories([windows[i][0] for i in idx], length))
    targets = torch.from_numpy(pad_histories([windows[i][1] for i in idx], length))
    return inputs, targets, codes[targets]


def evaluate_model(model: OneRecModel, histories: list[np.ndarray], targets: np.ndarray,
                   beam: int, topk: int = 10, batch: int = 256,
                   generator: Generator | None = None,
                   progress: bool = False) -> tuple[dict, np.ndarray]:
    """Recall/NDCG@5/10 of beam search -> (metrics, ranked items [U, topk])."""
    model.eval()
    generator = generator or Generator(model, beam, topk)
    # an imported model (adapter, factory) has max_history; the project's own, cfg
    length = getattr(model, "max_history", None) or model.cfg.max_history
    ranked = []
    steps = range(0, len(histories), batch)
    for start in progress_bar(steps, desc="generate", unit="batch", disable=not progress,
                              leave=False):
        hist = torch.from_numpy(pad_histories(histories[start:start + batch], length))
        ranked.append(beam_search(model, hist, beam, topk, generator=generator).items)
    ranked = np.concatenate(ranked) if ranked else np.zeros((0, topk), np.int64)
    return recall_ndcg(ranked, targets), ranked


def _train_epoch(model: OneRecModel, opt, schedule: BudgetedCosine, cfg: TrainConfig, windows,
                 order: np.ndarray, codes: torch.Tensor, steps_done: int,
                 bar, fit) -> tuple[list[float], int]:
    """One pass over the windows in ``order`` (``bar`` iterates its steps), ending early where
    the schedule or ``max_steps`` ends -> (losses, steps done in all). ``fit(steps_done)``
    re-estimates the schedule against the budget when it is due."""
    losses = []
    for step in bar:
        idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        loss, _ = training_loss(model, *_batch(windows, idx, codes), cfg.decoder_targets,
                                cfg.distill, codes)
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
        fit(steps_done)
        if schedule.finished(steps_done) or (cfg.max_steps is not None
                                             and steps_done >= cfg.max_steps):
            break
    return losses, steps_done


class BudgetFit:
    """Re-estimates ``schedule`` against the wall-time budget and says what changed: the
    first shortening of the cosine, and a budget too short for a useful model (``warning``)."""

    def __init__(self, schedule: BudgetedCosine, max_minutes: float, t_train: float, log):
        self.schedule, self.max_minutes, self.t_train, self.log = (schedule, max_minutes,
                                                                   t_train, log)
        self.shortened, self.warning, self.retracted = False, None, False

    def when_due(self, steps_done: int) -> None:
        seconds = time.time() - self.t_train
        if self.schedule.estimate_due(seconds) or seconds >= self.schedule.budget_seconds:
            self.fit(steps_done)

    def fit(self, steps_done: int) -> None:
        s, seconds = self.schedule, time.time() - self.t_train
        s.fit_budget(steps_done, seconds)
        if self.warning and s.total_steps >= USEFUL_STEPS:  # the machine got faster
            self.log(f"the budget now holds about {s.total_steps:,} steps: the warning above "
                     f"no longer applies")
            self.warning, self.retracted = None, True
        if s.total_steps >= s.planned:
            return
        if not self.shortened:
            self.shortened = True
            self.log(f"the {self.max_minutes:g}-min budget cannot hold {s.planned:,} steps: the "
                     f"cosine now ends at step {s.total_steps:,}, warm-up {s.warmup:,} steps "
                     f"(re-estimated as the run goes)")
        # judged once a tenth of the budget is spent (the first seconds' pace is too slow);
        # said once, withdrawn at most once
        if (self.warning is None and not self.retracted and s.total_steps < USEFUL_STEPS
                and seconds >= WARN_AFTER * s.budget_seconds):
            minutes = math.ceil(self.max_minutes * USEFUL_STEPS / max(1, s.total_steps))
            self.warning = (f"the {self.max_minutes:g}-min budget holds about "
                            f"{s.total_steps:,} steps on this machine, under {USEFUL_STEPS:,}: "
                            f"expect a model near popularity; give --max-minutes {minutes} "
                            f"or more")
            self.log("warning: " + self.warning)


def train(data: Dataset, model_cfg: ModelConfig, tok_cfg: TokenizerConfig, cfg: TrainConfig,
          progress: bool = True, log=print) -> ModelBundle:
    """The training stage: tokenizer from the training part, then the model; the best
    validation checkpoint is returned."""
    require_trainable(data)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    split: LeaveOneOut = data.split()
    t0 = time.time()
    ids: SemanticIds = build_tokenizer(split.train, data.num_items, tok_cfg)
    log(f"semantic IDs: {ids.codebook_sizes} codes, prefixes per level "
        f"{ids.stats['after']['distinct_prefixes_per_level']}, collisions before "
        f"disambiguation {ids.stats['items_in_collisions']} items ({time.time() - t0:.1f}s)")
    model_cfg.num_items = data.num_items
    model_cfg.codebook_sizes = list(ids.codebook_sizes)
    if cfg.distill and not model_cfg.aux_item_loss:
        raise user_error("--distill needs the auxiliary item softmax (aux_item_loss > 0)")
    model = OneRecModel(model_cfg, ids)
    if cfg.prefix_inputs:
        model.context.prefix_inputs = PrefixEmbedding(ids.codes, model_cfg.d_model)
    codes = torch.from_numpy(np.where(ids.codes < 0, 0, ids.codes))
    windows = training_windows(split.train, model_cfg.max_history)
    steps_per_epoch = math.ceil(len(windows) / cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    stopping = SmoothedStopping(cfg.patience)
    eval_idx = np.sort(rng.choice(split.num_users, min(cfg.eval_users, split.num_users),
                                  replace=False))
    eval_hist = [split.train[i] for i in eval_idx]
    eval_targets = split.valid_targets[eval_idx]
    generator = Generator(model, cfg.eval_beam, 10)
    best, best_state, epochs, steps_done = -1.0, None, [], 0
    log(f"training {sum(p.numel() for p in model.parameters()):,} parameters on "
        f"{len(windows):,} windows, {steps_per_epoch} steps/epoch, up to {cfg.epochs} epochs "
        f"or {cfg.max_minutes:g} min (the cosine ends with whichever comes first)")
    t_train = time.time()
    schedule = BudgetedCosine(cfg.lr, cfg.warmup_steps, cfg.epochs * steps_per_epoch,
                              cfg.max_minutes * 60 - (t_train - t0))
    budget = BudgetFit(schedule, cfg.max_minutes, t_train, log)
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(len(windows))
        bar = progress_bar(range(steps_per_epoch), desc=f"epoch {epoch + 1}",
                           disable=not progress, leave=False)
        losses, steps_done = _train_epoch(model, opt, schedule, cfg, windows, order, codes,
                                          steps_done, bar, budget.when_due)
        budget.fit(steps_done)
        ended = (schedule.finished(steps_done) or epoch + 1 == cfg.epochs
                 or (cfg.max_steps is not None and steps_done >= cfg.max_steps))
        if not ended and (epoch + 1) % cfg.eval_every:
            continue
        metrics, _ = evaluate_model(model, eval_hist, eval_targets, cfg.eval_beam,
                                     generator=generator)
        score = metrics["recall@10"] + metrics["ndcg@10"]
        minutes = (time.time() - t0) / 60
        epochs.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "minutes": minutes,
                        "steps": steps_done, "lr": schedule.lr(steps_done - 1),
                        **{f"valid_{k}": v for k, v in metrics.items()}})
        log(f"epoch {epoch + 1}: loss {np.mean(losses):.4f}  valid recall@10 "
            f"{metrics['recall@10']:.4f} ndcg@10 {metrics['ndcg@10']:.4f}  "
            f"(step {steps_done:,}/{schedule.total_steps:,}, {minutes:.1f} min)")
        if score > best:
            best, best_state = score, copy.deepcopy(model.state_dict())
        if stopping.update(score, schedule.progress(steps_done)):
            log(f"early stop: the mean of the last {stopping.window} validation scores has not "
                f"improved for {stopping.patience} evaluations")
            break
        if ended:
            break
    model.load_state_dict(best_state)
    model.context.fold_prefix_inputs()
    model.eval()
    info = {"dataset": data.name, "train_config": asdict(cfg), "tokenizer": asdict(tok_cfg),
            "epochs": epochs, "minutes": (time.time() - t0) / 60,
            "best_epoch": max(epochs, key=lambda e: e["valid_recall@10"] + e["valid_ndcg@10"]),
            "threads": torch.get_num_threads(), "dataset_stats": data.stats,
            "budget_warning": budget.warning}
    return ModelBundle(model, model_cfg, ids, data.vocab, None, info)

"""What ``--arch onerec`` trains: semantic IDs from the training part, then the OneRec model on
next-item semantic-ID prediction with teacher forcing at every history position, through the
one loop (``fit.py``: budgeted cosine, best state by validation Recall@10 + NDCG@10 of beam
search on a fixed sample of validation users, early stopping on their smoothed trend);
deterministic for a seed and thread count when the budget holds the plan.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict

import numpy as np
import torch

from onerec_trt.data import Dataset, LeaveOneOut, pad_histories
from onerec_trt.errors import user_error
from onerec_trt.model.checkpoint import ModelBundle
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.evaluation import evaluate_model
from onerec_trt.model.generate import Generator
from onerec_trt.model.onerec import OneRecModel, PrefixEmbedding
from onerec_trt.model.tokenizer import SemanticIds, TokenizerConfig, build_tokenizer
from onerec_trt.model.train.config import TrainConfig, require_trainable
from onerec_trt.model.train.fit import Trainee, fit
from onerec_trt.model.train.losses import training_loss

log = logging.getLogger(__name__)


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


def train(data: Dataset, model_cfg: ModelConfig, tok_cfg: TokenizerConfig, cfg: TrainConfig,
          progress: bool = True) -> ModelBundle:
    """The training stage: tokenizer from the training part, then the model; the best
    validation checkpoint is returned."""
    require_trainable(data)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    split: LeaveOneOut = data.split()
    t0 = time.time()
    ids: SemanticIds = build_tokenizer(split.train, data.num_items, tok_cfg)
    log.info(f"semantic IDs: {ids.codebook_sizes} codes, prefixes per level "
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
    eval_idx = np.sort(rng.choice(split.num_users, min(cfg.eval_users, split.num_users),
                                  replace=False))
    eval_hist = [split.train[i] for i in eval_idx]
    eval_targets = split.valid_targets[eval_idx]
    generator = Generator(model, cfg.eval_beam, 10)

    def batches() -> list[np.ndarray]:
        order = rng.permutation(len(windows))
        return [order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
                for step in range(steps_per_epoch)]

    def loss(idx: np.ndarray) -> torch.Tensor:
        return training_loss(model, *_batch(windows, idx, codes), cfg.decoder_targets,
                             cfg.distill, codes)[0]

    def validate() -> dict:
        return evaluate_model(model, eval_hist, eval_targets, cfg.eval_beam,
                              generator=generator)[0]

    log.info(f"training {sum(p.numel() for p in model.parameters()):,} parameters on "
             f"{len(windows):,} windows, {steps_per_epoch} steps/epoch, up to {cfg.epochs} epochs "
             f"or {cfg.max_minutes:g} min (the cosine ends with whichever comes first)")
    result = fit(Trainee(model, opt, steps_per_epoch, batches, loss, validate), cfg, t0,
                 progress)
    model = result.model  # with --fp8-aware: the plain copy, without quantizers
    model.context.fold_prefix_inputs()
    model.eval()
    info = {"dataset": data.name, "train_config": asdict(cfg), "tokenizer": asdict(tok_cfg),
            "epochs": result.epochs, "minutes": (time.time() - t0) / 60,
            "best_epoch": result.best_epoch, "threads": torch.get_num_threads(),
            "dataset_stats": data.stats, "budget_warning": result.budget_warning}
    if result.fp8_aware:
        info["fp8_aware"] = result.fp8_aware
    return ModelBundle(model, model_cfg, ids, data.vocab, None, info)

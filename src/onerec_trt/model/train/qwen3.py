"""``onerec-trt train --arch qwen3``: a small Qwen3 causal LM over itemic tokens.

The semantic IDs come from the project's tokenizer (training part only); transformers' own
``Qwen3ForCausalLM`` learns to write the next item's code tokens after a prompt of the user's
last S items, with the loss on the code tokens of every item of a window at once. The result
is a Hugging Face checkpoint (``config.json``, ``model.safetensors``, ``tokenizer.json``) and a
``catalogue.tsv``, which the import stage turns into a model folder. This module loads light:
torch and transformers are imported when training starts.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from onerec_trt.artifacts import check_out
from onerec_trt.errors import user_error
from onerec_trt.model.train.config import DataOptions, TrainConfig, require_positive
from onerec_trt.stage_runner import check_stage_out

log = logging.getLogger(__name__)

CATALOGUE = "catalogue.tsv"
TRAINING = "training.json"


@dataclass
class LMConfig:
    """The Qwen3 model's shape (sized for a CPU; the SwiGLU width is 4x ``hidden``)."""

    hidden: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int | None = None  # None: as many as heads
    max_history: int = 50  # S: history items in a prompt (5 tokens each with 3 levels)


def lm_train_config() -> TrainConfig:
    """The training defaults of the Qwen3 path where they differ from the OneRec model's: on
    ML-1M, 4-minute runs of the default shape reached a lower loss at lr 4e-3 than at 2e-3
    (same validation recall), and batches of 16 windows (5 tokens an item) suit one CPU core."""
    return TrainConfig(epochs=60, lr=4e-3, batch_size=16, warmup_steps=200, eval_users=1000,
                       max_minutes=35.0)


@dataclass
class LMOptions(DataOptions):
    out: str
    model: LMConfig = field(default_factory=LMConfig)
    codebook: int | None = None  # None: the tokenizer's default (256)
    levels: int | None = None  # None: the tokenizer's default (3)
    train: TrainConfig = field(default_factory=lm_train_config)
    checkpoint: str | None = None  # also keep the HF checkpoint + catalogue here
    threads: int = 1  # torch threads (stage.THREADS_HELP)
    progress: bool = True
    force: bool = False


@dataclass
class Fitted:
    """A trained LM with what its checkpoint needs."""

    model: object  # Qwen3ForCausalLM, best validation state
    layout: object  # qwen3_data.ItemicLayout
    semantic_ids: object  # tokenizer.SemanticIds: codes [num_items + 1, levels], the trie
    item_ids: list[str]  # the dataset's ids of model items 1..N
    record: dict  # training.json


def _validate(opts: LMOptions) -> None:
    m = opts.model
    for name in ("hidden", "layers", "heads", "max_history"):
        if getattr(m, name) <= 0:
            raise user_error(f"{name} must be positive, got {getattr(m, name)}")
    if m.hidden % m.heads:
        raise user_error(f"--d-model {m.hidden} is not a multiple of --heads {m.heads}")
    kv = m.kv_heads or m.heads
    if kv <= 0 or m.heads % kv:
        raise user_error(f"kv heads {kv} must divide --heads {m.heads}")
    cfg = opts.train
    require_positive(cfg, ("epochs", "max_minutes", "lr", "batch_size", "eval_users",
                           "eval_beam"))
    if cfg.patience < 0:
        raise user_error("--patience must not be negative")
    cfg.check_fp8_aware()
    opts.check()
    require_positive(opts, ("codebook", "levels", "threads"))
    if opts.checkpoint:
        check_out(opts.checkpoint, [opts.data, opts.out], opts.force, flag="--checkpoint")


def qwen3_config(m: LMConfig, layout):
    """transformers' ``Qwen3Config`` for the itemic vocabulary of ``layout``."""
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=len(layout.tokens), hidden_size=m.hidden, intermediate_size=4 * m.hidden,
        num_hidden_layers=m.layers, num_attention_heads=m.heads,
        num_key_value_heads=m.kv_heads or m.heads, head_dim=m.hidden // m.heads,
        max_position_embeddings=(m.max_history + 1) * layout.width + 8,
        tie_word_embeddings=True, use_sliding_window=False, attention_dropout=0.0,
        pad_token_id=layout.pad_id, bos_token_id=layout.begin_id, eos_token_id=layout.end_id)


def lm_loss(model, ids, targets):
    """Mean cross-entropy of the scored next tokens; the LM head runs on those positions only."""
    import torch.nn.functional as F

    from onerec_trt.model.train.qwen3_data import IGNORE

    hidden = model.model(input_ids=ids, use_cache=False).last_hidden_state
    keep = targets != IGNORE
    return F.cross_entropy(model.lm_head(hidden[keep]).float(), targets[keep])


def _param_groups(model, weight_decay: float) -> list[dict]:
    """Decay matrices (embeddings too); never norm weights."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def fit_lm(data, opts: LMOptions) -> Fitted:
    """Semantic IDs, then the LM, through the one training loop (``fit.fit``): the state with
    the best validation Recall@10 + NDCG@10 is kept."""
    import numpy as np
    import torch
    from transformers import Qwen3ForCausalLM

    from onerec_trt.metrics import recall_ndcg
    from onerec_trt.model.tokenizer import TokenizerConfig, build_tokenizer
    from onerec_trt.model.train.fit import Trainee, fit
    from onerec_trt.model.train.qwen3_data import (
        item_windows,
        itemic_layout,
        length_batches,
        rank_users,
        render_windows,
    )

    cfg, m = opts.train, opts.model
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    split = data.split()
    tok_cfg = TokenizerConfig(seed=cfg.seed)
    tok_cfg.codebook_size = opts.codebook or tok_cfg.codebook_size
    tok_cfg.levels = opts.levels or tok_cfg.levels
    ids = build_tokenizer(split.train, data.num_items, tok_cfg)
    layout = itemic_layout(ids.codes, ids.codebook_sizes)
    log.info(f"semantic IDs: {ids.codebook_sizes} codes ({ids.stats['disambiguation']} level "
             f"disambiguation), {len(layout.tokens)} tokens ({time.time() - t0:.1f}s)")
    model = Qwen3ForCausalLM(qwen3_config(m, layout))
    windows = item_windows(split.train, m.max_history)
    lengths = np.array([len(w) for w in windows])
    steps_per_epoch = math.ceil(len(windows) / cfg.batch_size)
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    eval_idx = np.sort(rng.choice(split.num_users, min(cfg.eval_users, split.num_users),
                                  replace=False))
    eval_hist = [split.train[i] for i in eval_idx]

    def loss(batch) -> torch.Tensor:
        ids_np, targets_np = render_windows([windows[i] for i in batch], layout)
        return lm_loss(model, torch.from_numpy(ids_np), torch.from_numpy(targets_np))

    def validate() -> dict:
        ranked = rank_users(model, eval_hist, m.max_history, layout, ids, cfg.eval_beam)
        return recall_ndcg(ranked, split.valid_targets[eval_idx])

    n_params = sum(p.numel() for p in model.parameters())
    log.info(f"training Qwen3 ({n_params:,} parameters, {m.layers} layers x {m.hidden}) on "
             f"{len(windows):,} windows ({int(lengths.sum()) * layout.width:,} tokens), "
             f"{steps_per_epoch} steps/epoch, up to {cfg.epochs} epochs or {cfg.max_minutes:g} min")
    trainee = Trainee(model, opt, steps_per_epoch,
                      lambda: length_batches(lengths, cfg.batch_size, rng), loss, validate)
    result = fit(trainee, cfg, t0, opts.progress)
    record = {
        "dataset": data.name, "arch": "qwen3", "lm": asdict(m), "train_config": asdict(cfg),
        "tokenizer": asdict(tok_cfg), "semantic_ids": ids.stats, "parameters": n_params,
        "epochs": result.epochs, "minutes": (time.time() - t0) / 60,
        "best_epoch": result.best_epoch, "threads": torch.get_num_threads(),
        "dataset_stats": data.stats, "budget_warning": result.budget_warning,
        "loss": "cross-entropy on the code tokens of every window item but the first",
    }
    if result.fp8_aware:
        record["fp8_aware"] = result.fp8_aware
    return Fitted(result.model, layout, ids, list(data.vocab.tokens), record)


def write_checkpoint(folder: str | Path, fitted: Fitted) -> Path:
    """The HF checkpoint into an existing (staged) ``folder``: config.json, model.safetensors,
    generation_config.json, tokenizer.json, catalogue.tsv and training.json."""
    from onerec_trt.artifacts import write_json
    from onerec_trt.model.hf.itemic import write_itemic_tokenizer
    from onerec_trt.model.train.qwen3_data import write_catalogue

    folder = Path(folder)
    fitted.model.save_pretrained(folder)
    write_itemic_tokenizer(folder, fitted.layout.tokens)
    write_catalogue(folder / CATALOGUE, fitted.item_ids, fitted.semantic_ids.codes)
    write_json(folder / TRAINING, fitted.record)
    return folder


def _save_checkpoint(out: str, fitted: Fitted, opts: LMOptions) -> Path:
    """``write_checkpoint`` into a staged folder that replaces ``out``, with a manifest."""
    from onerec_trt.artifacts import staged_folder, write_manifest

    with staged_folder(out, force=opts.force, inputs=opts) as tmp:
        write_checkpoint(tmp, fitted)
        write_manifest(tmp, "train", {"arch": "qwen3", "lm": asdict(opts.model),
                                      "train": asdict(opts.train)},
                       inputs={"dataset": opts.dataset, "data": str(opts.data or "")})
    return Path(out)


def import_model(checkpoint: Path, opts: LMOptions, record: dict) -> Path:
    """The import stage turns the checkpoint into the model folder ``opts.out``."""
    from onerec_trt.model.hf_import.stage import ImportOptions, import_checkpoint
    from onerec_trt.model.train.qwen3_data import ITEM_TEMPLATE, PROMPT_TEMPLATE

    import_checkpoint(ImportOptions(
        hf=str(checkpoint), catalogue=str(checkpoint / CATALOGUE), out=opts.out,
        dataset=opts.dataset, data=opts.data, columns=opts.columns,
        max_history=opts.model.max_history, template=PROMPT_TEMPLATE,
        item_template=ITEM_TEMPLATE, training=record, force=opts.force))
    return Path(opts.out)


def train_lm(opts: LMOptions) -> Path:
    """``onerec-trt train --arch qwen3``: returns the model folder written (``opts.out``)."""
    import torch

    check_stage_out(opts)  # --out first, before any other check or work (import writes it)
    _validate(opts)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    data = opts.load()
    fitted = fit_lm(data, opts)
    fitted.record.update(filters=opts.filters(), columns=opts.columns, data=opts.data_path())
    best = fitted.record["best_epoch"]
    log.info(f"best epoch {best['epoch']}: valid recall@10 {best['valid_recall@10']:.4f} "
             f"ndcg@10 {best['valid_ndcg@10']:.4f}, {fitted.record['minutes']:.1f} min")
    if opts.checkpoint:
        _save_checkpoint(opts.checkpoint, fitted, opts)
        log.info(f"wrote the Hugging Face checkpoint and catalogue to {opts.checkpoint}")
    if opts.checkpoint:
        return import_model(Path(opts.checkpoint), opts, fitted.record)
    out = Path(opts.out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    # named like a staged folder: the next run into --out removes it if this one is killed
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".partial",
                                dir=out.parent))
    try:
        write_checkpoint(tmp, fitted)
        try:
            return import_model(tmp, opts, fitted.record)
        except Exception:
            kept = out.with_name(out.name + ".hf-checkpoint")
            if not kept.exists():
                tmp.rename(kept)
                log.info(f"the import failed: the trained checkpoint is kept in {kept}")
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

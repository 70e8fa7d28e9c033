"""The train stage: data -> tokenizer -> model -> a model folder with its manifest.

``TrainOptions`` holds every option of ``onerec-trt train`` (the CLI takes its defaults from
here and from ``TrainConfig``); ``train_stage`` checks them, trains (``onerec.py``) and
writes the folder. This module imports nothing heavy at load time.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace

from onerec_trt.errors import user_error
from onerec_trt.model.train.config import (
    DataOptions,
    TrainConfig,
    require_positive,
    require_trainable,
)
from onerec_trt.stage_runner import check_stage_out, run_stage

log = logging.getLogger(__name__)

__all__ = ["DataOptions", "TrainConfig", "TrainOptions", "require_trainable", "train_stage",
           "with_seed", "THREADS_HELP"]

THREADS_HELP = (
    "torch threads (default: 1, as in every measured run in docs/model.md: the small model's "
    "matrices are too small for more threads to pay off, and on a busy machine threads wait for "
    "each other: all threads of a loaded 2-core machine made 10 steps a minute, 1 thread 355; "
    "the same seed and thread count give the same model; on an idle machine --threads 2 can "
    "be faster)")


@dataclass
class TrainOptions(DataOptions):
    out: str
    preset: str = "small"
    max_history: int | None = None  # None: the preset's
    dropout: float | None = None  # None: the preset's
    d_model: int | None = None  # None: the preset's (the SwiGLU width follows at 4x)
    codebook: int | None = None  # None: the tokenizer's default
    levels: int | None = None  # None: the tokenizer's default
    train: TrainConfig = field(default_factory=TrainConfig)
    threads: int = 1  # torch threads (THREADS_HELP says why 1)
    auto: tuple[str, ...] = ()  # options chosen from the data (defaults.CHOICES)
    progress: bool = True
    force: bool = False


def _validate(opts: TrainOptions) -> None:
    if opts.preset == "paper":
        raise user_error("the paper preset is for GPU benchmarks and is not trained here",
                         "use --preset small (or tiny); 'onerec-trt init --preset paper' makes "
                         "an untrained model of that size")
    require_positive(opts, ("max_history", "d_model", "codebook", "levels", "threads"))
    if opts.dropout is not None and not 0 <= opts.dropout < 1:
        raise user_error(f"--dropout must be in [0, 1), got {opts.dropout}")
    cfg = opts.train
    require_positive(cfg, ("epochs", "max_minutes", "lr", "batch_size", "eval_users",
                           "eval_every"))
    if cfg.patience < 0 or cfg.distill < 0:
        raise user_error("--patience and --distill must not be negative")
    cfg.check_fp8_aware()
    opts.check()


def _model_config(opts: TrainOptions):
    from onerec_trt.model.config import ModelConfig

    overrides = {"max_history": opts.max_history} if opts.max_history else {}
    if opts.dropout is not None:
        overrides["dropout"] = opts.dropout
    if opts.d_model is not None:
        overrides.update(d_model=opts.d_model, ffn_hidden=4 * opts.d_model)
    return ModelConfig.from_preset(opts.preset, **overrides)


def train_stage(opts: TrainOptions):
    """``onerec-trt train``: returns the trained ``ModelBundle`` after writing ``opts.out``."""
    import torch

    from onerec_trt.model.checkpoint import save_model
    from onerec_trt.model.tokenizer import TokenizerConfig
    from onerec_trt.model.train.onerec import train

    check_stage_out(opts)  # --out first, before any other check or work
    _validate(opts)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    data = opts.load()
    choices = []
    if opts.auto:
        opts, choices = _choose_from_data(opts, data)
    model_cfg = _model_config(opts)
    tok_cfg = TokenizerConfig(seed=opts.train.seed)
    if opts.codebook:
        tok_cfg.codebook_size = opts.codebook
    if opts.levels:
        tok_cfg.levels = opts.levels
    bundle = train(data, model_cfg, tok_cfg, opts.train, progress=opts.progress)
    if opts.data:
        bundle.training["data"] = opts.data_path()
    bundle.training["columns"] = opts.columns
    bundle.training["chosen_from_data"] = [asdict(c) for c in choices]
    bundle.training["filters"] = opts.filters()

    def write(run):
        save_model(run.folder, bundle)
        run.options = {"preset": opts.preset, "model": model_cfg.to_dict(),
                       "tokenizer": asdict(tok_cfg), "train": asdict(opts.train)}
        run.inputs.update(dataset=opts.dataset, data=str(opts.data or ""))
        return bundle

    run_stage("train", opts, write)
    best = bundle.training["best_epoch"]
    log.info(f"wrote {opts.out}: best epoch {best['epoch']} valid recall@10 "
             f"{best['valid_recall@10']:.4f} ndcg@10 {best['valid_ndcg@10']:.4f}, "
             f"{bundle.training['minutes']:.1f} min")
    return bundle


def _choose_from_data(opts: TrainOptions, data) -> tuple[TrainOptions, list]:
    """``opts`` with the options named in ``opts.auto`` chosen from the data (printed), and
    the ``defaults.Choice`` list (every choosable option, given or chosen)."""
    import math

    from onerec_trt.model.config import ModelConfig
    from onerec_trt.model.train import defaults
    from onerec_trt.model.train.onerec import training_windows

    unknown = set(opts.auto) - set(defaults.CHOICES)
    if unknown:
        raise ValueError(f"options not chosen from data: {sorted(unknown)}")
    given = {name: getattr(opts.train if name in defaults.TRAIN_CHOICES else opts, name)
             for name in defaults.CHOICES if name not in opts.auto}
    if given.get("max_history") is None:
        given.pop("max_history", None)  # None: the preset's, which the rule replaces
    if given.get("codebook") is None:
        given.pop("codebook", None)
    split = data.split()

    def steps_per_epoch(history: int) -> int:
        return math.ceil(len(training_windows(split.train, history)) / opts.train.batch_size)

    profile = defaults.DataProfile.of(split, data.num_items)
    preset_history = ModelConfig.from_preset(opts.preset).max_history
    choices = defaults.choose(profile, steps_per_epoch, given, preset_history)
    log.info(defaults.describe(choices))
    return defaults.apply(opts, choices), choices


def with_seed(opts: TrainOptions, seed: int) -> TrainOptions:
    """The same options with another seed (the tokenizer's and the training loop's)."""
    return replace(opts, train=replace(opts.train, seed=seed))

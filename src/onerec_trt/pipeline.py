"""Stage functions behind the CLI: each reads and writes files, so any stage can run alone."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from onerec_trt.artifacts import staged_folder, write_manifest, write_text
from onerec_trt.data import load_dataset
from onerec_trt.errors import user_error
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.folder import ModelBundle, save_model
from onerec_trt.model.tokenizer import TokenizerConfig
from onerec_trt.model.train import TrainConfig, train


def train_stage(args) -> ModelBundle:
    """``onerec-trt train``: data -> tokenizer -> model -> a model folder with its manifest."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.preset == "paper":
        raise user_error("the paper preset is for GPU benchmarks and is not trained here",
                         "use --preset small (or tiny)")
    overrides = {"max_history": args.max_history} if args.max_history else {}
    if args.dropout is not None:
        if not 0 <= args.dropout < 1:
            raise user_error(f"--dropout must be in [0, 1), got {args.dropout}")
        overrides["dropout"] = args.dropout
    if args.d_model is not None:
        if args.d_model <= 0:
            raise user_error(f"--d-model must be positive, got {args.d_model}")
        overrides.update(d_model=args.d_model, ffn_hidden=4 * args.d_model)
    model_cfg = ModelConfig.from_preset(args.preset, **overrides)
    tok_cfg = TokenizerConfig(seed=args.seed)
    if args.codebook:
        tok_cfg.codebook_size = args.codebook
    if args.levels:
        tok_cfg.levels = args.levels
    if args.distill < 0:
        raise user_error(f"--distill must not be negative, got {args.distill}")
    train_cfg = TrainConfig(seed=args.seed, prefix_inputs=args.prefix_inputs,
                            distill=args.distill)
    for name in ("epochs", "max_minutes", "lr", "batch_size", "eval_users"):
        value = getattr(args, name)
        if value is not None:
            if value <= 0:
                raise user_error(f"--{name.replace('_', '-')} must be positive, got {value}")
            train_cfg = replace(train_cfg, **{name: value})
    if args.patience is not None:
        if args.patience < 0:
            raise user_error(f"--patience must not be negative, got {args.patience}")
        train_cfg = replace(train_cfg, patience=args.patience)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise user_error(f"output folder already exists: {out}", "pass --force to replace it")
    filters = {"min_user": args.min_user, "min_item": args.min_item, "kcore": args.kcore}
    for name, value in filters.items():
        if value < 0:
            raise user_error(f"--{name.replace('_', '-')} must not be negative, got {value}")
    data = load_dataset(args.dataset, args.data, columns=args.columns, **filters)
    print(data.describe())
    bundle = train(data, model_cfg, tok_cfg, train_cfg, progress=not args.quiet)
    if args.data:
        bundle.training["data"] = str(Path(args.data).resolve())
    bundle.training["columns"] = args.columns
    bundle.training["filters"] = filters
    with staged_folder(out, force=args.force) as tmp:
        save_model(tmp, bundle)
        write_manifest(tmp, "train", {"preset": args.preset, "model": model_cfg.to_dict(),
                                      "tokenizer": asdict(tok_cfg), "train": asdict(train_cfg)},
                       inputs={"dataset": args.dataset, "data": str(args.data or "")})
    best = bundle.training["best_epoch"]
    print(f"wrote {out}: best epoch {best['epoch']} valid recall@10 {best['valid_recall@10']:.4f}"
          f" ndcg@10 {best['valid_ndcg@10']:.4f}, {bundle.training['minutes']:.1f} min")
    return bundle


@dataclass
class RunOptions:
    out: str = "runs/default"
    users: int | None = None  # test users evaluated (None: all)
    verify_users: int = 1000
    analyze: bool = True
    bench: bool = True


def run(opts: RunOptions) -> dict:
    """``onerec-trt run``: every stage, on the shipped model and MovieLens-1M.

    eval (beside the baselines) -> analyze -> export (+ plugin graphs) -> quantize (with the
    analysis' exclusions) -> plugin graphs of the FP8 graph -> lint -> build (where TensorRT
    exists) -> verify (FP8 simulation against bf16) -> Triton repository -> bench.
    """
    from onerec_trt.run_stages import STAGES

    t0 = time.time()
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    results, rows = {}, []
    for name, stage in STAGES:
        start = time.time()
        print(f"\n== {name} ==")
        result, row = stage(out, opts, results)
        results[name] = result
        if row is not None:
            rows.append([name, row[0], row[1], f"{time.time() - start:.0f} s"])
    from onerec_trt.evaluate.table import format_table

    summary = ("# onerec-trt run\n\n"
               + format_table(["stage", "result", "backend", "time"], rows))
    write_text(out / "summary.md", summary + "\n")
    write_manifest(out, "run", asdict(opts))
    print("\n" + summary)
    print(f"\nrun folder: {out} ({time.time() - t0:.0f} s)")
    return results

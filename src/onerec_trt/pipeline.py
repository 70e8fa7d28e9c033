"""Stage functions behind the CLI: each reads and writes files, so any stage can run alone."""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from onerec_trt.artifacts import staged_folder, write_json, write_manifest, write_text
from onerec_trt.data import load_dataset
from onerec_trt.errors import user_error
from onerec_trt.evaluate import EvalOptions, evaluate, format_report
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
    model_cfg = ModelConfig.from_preset(args.preset, **overrides)
    tok_cfg = TokenizerConfig(seed=args.seed)
    if args.codebook:
        tok_cfg.codebook_size = args.codebook
    if args.levels:
        tok_cfg.levels = args.levels
    train_cfg = TrainConfig(seed=args.seed)
    for name in ("epochs", "max_minutes", "lr", "batch_size", "eval_users"):
        value = getattr(args, name)
        if value is not None:
            if value <= 0:
                raise user_error(f"--{name.replace('_', '-')} must be positive, got {value}")
            train_cfg = replace(train_cfg, **{name: value})
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


def run(out: Path, users: int | None = None, verify_users: int = 1000) -> dict:
    """``onerec-trt run``: every stage that exists, on the shipped model and MovieLens-1M.

    eval (model beside the baselines) -> export (bf16 graph + CPU rendering) -> quantize (FP8
    PTQ) -> verify (FP8 simulation against the bf16 reference). The run folder is rewritten.
    """
    from onerec_trt.export import ExportOptions, export
    from onerec_trt.quantize import QuantizeOptions, quantize
    from onerec_trt.verify import VerifyOptions, verify

    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    timings = {}

    def timed(name, fn):
        start = time.time()
        print(f"\n== {name} ==")
        result = fn()
        timings[name] = time.time() - start
        return result

    report = timed("eval", lambda: evaluate(EvalOptions(model="default", dataset="ml-1m",
                                                        users=users, baselines=True)))
    write_json(out / "eval.json", report)
    print(format_report(report))
    meta = timed("export", lambda: export(ExportOptions(out=str(out / "onnx"), force=True)))
    quant = timed("quantize", lambda: quantize(QuantizeOptions(
        onnx=str(out / "onnx"), out=str(out / "fp8"), force=True)))
    check = timed("verify", lambda: verify(VerifyOptions(
        reference=str(out / "onnx" / "reference.cpu.onnx"),
        candidate=str(out / "fp8" / "fp8.cpu.onnx"), users=verify_users,
        out=str(out / "verify"), force=True)))
    summary = _summary(report, meta, quant, check, timings)
    write_text(out / "summary.md", summary + "\n")
    write_manifest(out, "run", {"users": users, "verify_users": verify_users})
    print("\n" + summary)
    print(f"\nrun folder: {out} ({time.time() - t0:.0f} s)")
    return {"eval": report, "export": meta, "quantize": quant, "verify": check}


def _summary(report: dict, meta: dict, quant: dict, check: dict, timings: dict) -> str:
    from onerec_trt.evaluate.table import format_table

    m = check["metrics"]
    rows = [
        ["eval", f"Recall@10 {report['recall@10']:.4f} NDCG@10 {report['ndcg@10']:.4f} "
                 f"(Markov {report['baselines']['markov']['recall@10']:.4f} / "
                 f"{report['baselines']['markov']['ndcg@10']:.4f}), {report['users']} users",
         report["backend"], f"{timings['eval']:.0f} s"],
        ["export", f"{meta['nodes']['reference.bf16.onnx']} nodes, beam {meta['options']['beam']}"
                   f", top {meta['options']['topk']}", "torch.onnx (opset 19)",
         f"{timings['export']:.0f} s"],
        ["quantize", f"{len(quant['quantized_gemms'])} GEMMs FP8, "
                     f"{len(quant['excluded_gemms'])} excluded, {quant['calibration']['users']} "
                     "calibration users", "nvidia-modelopt (torch PTQ)",
         f"{timings['quantize']:.0f} s"],
        ["verify", f"{'PASS' if check['pass'] else 'FAIL'}: overlap@10 {m['overlap@10']:.3f}, "
                   f"Recall@10 {m['recall@10']['relative_diff']:+.2%}, NDCG@10 "
                   f"{m['ndcg@10']['relative_diff']:+.2%} ({check['users']} users)",
         "polygraphy + onnxruntime CPU (FP8 simulation vs bf16)", f"{timings['verify']:.0f} s"],
    ]
    return "# onerec-trt run\n\n" + format_table(["stage", "result", "backend", "time"], rows)

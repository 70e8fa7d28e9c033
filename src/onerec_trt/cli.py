"""The command line: a thin shell that parses arguments and calls one stage function each."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from onerec_trt.errors import UserError

STAGES = {
    "run": "the main job: every stage on the built-in default (shipped model, MovieLens-1M)",
    "train": "train a model (tokenizer + OneRec-V2-style model) on a dataset",
    "eval": "Recall/NDCG@5/10 of a model's beam search beside popularity, Markov, item-kNN",
    "export": "the whole request (context, decode steps, beam search) as one ONNX graph",
    "quantize": "ModelOpt FP8 PTQ of the exported graph, calibrated on real users",
    "verify": "the accuracy gate: Polygraphy compares a candidate (FP8) with the reference",
}

DATA_HELP = ("ml-1m (built in), beauty (--data Beauty.txt), sequences (--data FILE: "
             "'user item item ...' a line), table (--data CSV/TSV/Parquet, with --columns)")


def _add_data_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--dataset", required=required, default=None, help=DATA_HELP)
    p.add_argument("--data", default=None, help="the dataset's file (see --dataset)")
    p.add_argument("--columns", default=None,
                   help="for --dataset table: user=COL,item=COL[,time=COL] (time optional: "
                        "file order then)")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onerec-trt",
        description="TensorRT FP8 compilation backend for OneRec-V2-style generative "
                    "recommenders. Stages:\n"
                    + "\n".join(f"  {k:<9} {v}" for k, v in STAGES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", metavar="STAGE")

    p = sub.add_parser("run", help=STAGES["run"], description=STAGES["run"])
    p.add_argument("--out", default="runs/default", help="run folder (default: runs/default)")
    p.add_argument("--users", type=int, default=None, help="evaluate a sample (default: all)")

    p = sub.add_parser("train", help=STAGES["train"], description=STAGES["train"],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_data_args(p, required=True)
    p.add_argument("--preset", default="small", help="model preset: tiny, small (paper is for "
                   "GPU benchmarks, not training)")
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--epochs", type=int, default=None, help="default: the training config's")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-time budget")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-history", type=int, default=None, help="override the preset's S")
    p.add_argument("--codebook", type=int, default=None, help="codes per semantic-ID level")
    p.add_argument("--levels", type=int, default=None, help="semantic-ID levels")
    p.add_argument("--eval-users", type=int, default=None, help="validation users per epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("eval", help=STAGES["eval"], description=STAGES["eval"],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="default", help="model folder, or 'default' (shipped)")
    _add_data_args(p, required=False)
    p.add_argument("--split", default="test", choices=("test", "valid"))
    p.add_argument("--users", type=int, default=None, help="a seeded sample (default: all)")
    p.add_argument("--beam", type=int, default=20, help="beam width B (results: top 10)")
    p.add_argument("--baselines", action="store_true",
                   help="also score popularity, Markov and item-kNN on the same split")
    p.add_argument("--json", default=None, help="write the report here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("export", help=STAGES["export"], description=STAGES["export"],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="default", help="model folder, or 'default' (shipped)")
    p.add_argument("--out", default="runs/default/onnx", help="folder for the graphs")
    p.add_argument("--beam", type=int, default=20, help="beam width B")
    p.add_argument("--topk", type=int, default=10, help="results per user K (<= B)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")

    p = sub.add_parser("quantize", help=STAGES["quantize"], description=STAGES["quantize"],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="default", help="model folder, or 'default' (shipped)")
    p.add_argument("--onnx", default="runs/default/onnx", help="the export stage's folder")
    p.add_argument("--out", default="runs/default/fp8", help="folder for the FP8 graphs")
    _add_data_args(p, required=False)
    p.add_argument("--calib-users", type=int, default=512,
                   help="training-split users to calibrate on")
    p.add_argument("--calib-batch", type=int, default=64, help="users per calibration batch")
    p.add_argument("--calib-method", default="max", help="ModelOpt calibration algorithm")
    p.add_argument("--calib-data", default=None,
                   help=".npy [users, S] item-id histories to calibrate on instead")
    p.add_argument("--exclude", action="append", default=[], metavar="REGEX",
                   help="keep matching layers (e.g. 'heads\\.') in bf16; repeatable")
    p.add_argument("--exclusions", default=None,
                   help="exclusions.json from 'onerec-trt analyze'")
    p.add_argument("--calibration", default=None,
                   help="calibration.json of an earlier run: reuse its scales, skip calibration")
    p.add_argument("--force", action="store_true", help="replace an existing --out")

    p = sub.add_parser("verify", help=STAGES["verify"], description=STAGES["verify"] +
                       ". Exit 0: pass, 1: a gate failed, 2: usage error.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--reference", default="runs/default/onnx/reference.cpu.onnx",
                   help="reference graph (ONNX Runtime)")
    p.add_argument("--candidate", default="runs/default/fp8/fp8.cpu.onnx",
                   help="FILE.onnx (ONNX Runtime), FILE.plan (TensorRT), torch, torch:bf16")
    p.add_argument("--model", default="default", help="model folder, or 'default' (shipped)")
    _add_data_args(p, required=False)
    p.add_argument("--split", default="test", choices=("test", "valid"))
    p.add_argument("--users", type=int, default=1000, help="held-out users (seeded sample)")
    p.add_argument("--out", default="runs/default/verify", help="report folder")
    p.add_argument("--min-overlap", type=float, default=0.9, help="gate: mean overlap@10")
    p.add_argument("--max-recall-drop", type=float, default=0.01,
                   help="gate: largest relative Recall@10 loss")
    p.add_argument("--max-ndcg-drop", type=float, default=0.01,
                   help="gate: largest relative NDCG@10 loss")
    p.add_argument("--scores-atol", type=float, default=0.5, help="scores tensor tolerance")
    p.add_argument("--scores-rtol", type=float, default=0.1, help="scores tensor tolerance")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    return parser


def _train(args) -> int:
    from onerec_trt.pipeline import train_stage

    train_stage(args)
    return 0


def _eval(args) -> int:
    from onerec_trt.artifacts import write_json
    from onerec_trt.evaluate import EvalOptions, evaluate, format_report

    report = evaluate(EvalOptions(model=args.model, dataset=args.dataset, data=args.data,
                                  columns=args.columns, split=args.split, users=args.users,
                                  beam=args.beam, baselines=args.baselines),
                      progress=not args.quiet)
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


def _export(args) -> int:
    from onerec_trt.export import ExportOptions, export

    export(ExportOptions(model=args.model, out=args.out, beam=args.beam, topk=args.topk,
                         force=args.force))
    return 0


def _quantize(args) -> int:
    from onerec_trt.quantize import QuantizeOptions, quantize

    quantize(QuantizeOptions(
        model=args.model, onnx=args.onnx, out=args.out, calib_users=args.calib_users,
        calib_batch=args.calib_batch, calib_method=args.calib_method, calib_data=args.calib_data,
        exclude=args.exclude, exclusions=args.exclusions, calibration=args.calibration,
        dataset=args.dataset, data=args.data, columns=args.columns, force=args.force))
    return 0


def _verify(args) -> int:
    from onerec_trt.verify import Gates, VerifyOptions, verify

    report = verify(VerifyOptions(
        reference=args.reference, candidate=args.candidate, model=args.model,
        dataset=args.dataset, data=args.data, columns=args.columns, split=args.split,
        users=args.users, out=args.out, scores_atol=args.scores_atol,
        scores_rtol=args.scores_rtol, force=args.force,
        gates=Gates(args.min_overlap, args.max_recall_drop, args.max_ndcg_drop)))
    return 0 if report["pass"] else 1


def _run(args) -> int:
    from onerec_trt.pipeline import run

    run(Path(args.out), users=args.users)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.stage is None:
        parser.print_help()
        return 2
    try:
        stages = {"train": _train, "eval": _eval, "run": _run, "export": _export,
                  "quantize": _quantize, "verify": _verify}
        return stages[args.stage](args)
    except UserError as exc:
        print(f"onerec-trt {args.stage}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

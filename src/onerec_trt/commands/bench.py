import shlex

from onerec_trt.commands import add_model_argument

HELP = "latency, throughput and peak memory of every backend that runs here, side by side"
DESCRIPTION = (HELP + ". Each backend runs in its own process, in alternating order; FP8/BF16 "
               "ratios are paired per repetition. A CPU simulation's ratio says nothing about "
               "GPU speed (GPU evidence: scripts/device_bench.py).")

BACKENDS = ("torch, torch-bf16, ort-bf16, ort-fp8, ort-plugins-bf16, ort-plugins-fp8, trt-bf16, "
            "trt-fp8, trt-plugins-bf16, trt-plugins-fp8")


def _ints(text: str) -> list[int]:
    import argparse

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_arguments(p):
    add_model_argument(p)
    p.add_argument("--onnx", default="runs/default/onnx", help="the export stage's folder")
    p.add_argument("--fp8", default="runs/default/fp8", help="the quantize stage's folder")
    p.add_argument("--engines", default="runs/default/engines",
                   help="the build stage's folder (TensorRT plans)")
    p.add_argument("--out", default="runs/default/bench", help="report folder")
    p.add_argument("--backends", type=_names, default=[],
                   help=f"comma-separated subset of: {BACKENDS} (default: all that can run)")
    p.add_argument("--batch", type=_ints, default=[1, 8, 64], dest="batches",
                   help="users per request, comma-separated (e.g. 1,8,64)")
    p.add_argument("--beam", type=int, default=None,
                   help="beam width (default: the exported graphs' beam)")
    p.add_argument("--topk", type=int, default=None, help="items per user (default: the graphs')")
    p.add_argument("--reps", type=int, default=10,
                   help="timed requests per backend and batch size (alternating)")
    p.add_argument("--warmup", type=int, default=2, help="untimed requests first")
    p.add_argument("--threads", type=int, default=1, help="threads per backend")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="where the torch reference runs")
    p.add_argument("--max-call-s", type=float, default=30.0,
                   help="a backend whose request takes longer stops at that batch size")
    p.add_argument("--scaling", action="store_true",
                   help="also measure how cost grows with history S, beam B, catalogue, levels L")
    p.add_argument("--scaling-axes", type=_names, default=[],
                   help="comma-separated subset of history,beam,catalogue,levels")
    p.add_argument("--scaling-users", type=int, default=8, help="users per scaling request")
    p.add_argument("--scaling-reps", type=int, default=3, help="timed requests per point")
    p.add_argument("--seed", type=int, default=0, help="synthetic histories' seed")
    p.add_argument("--force", action="store_true", help="replace an existing --out")


def run(args) -> int:
    from onerec_trt.bench import BenchOptions, bench

    bench(BenchOptions(
        model=args.model, onnx=args.onnx, fp8=args.fp8, engines=args.engines, out=args.out,
        backends=args.backends, batches=args.batches, beam=args.beam, topk=args.topk,
        reps=args.reps, warmup=args.warmup, threads=args.threads, device=args.device,
        max_call_s=args.max_call_s, scaling=args.scaling, scaling_axes=args.scaling_axes,
        scaling_users=args.scaling_users, scaling_reps=args.scaling_reps, seed=args.seed,
        force=args.force, command=command_line(args)))
    return 0


def command_line(args) -> str:
    """The full command with every option spelled out, so a number can be reproduced."""
    words = ["onerec-trt", "bench"]
    for key, value in sorted(vars(args).items()):
        if key in ("stage", "force") or value is None or value is False or value == []:
            continue
        flag = "--batch" if key == "batches" else "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        else:
            words += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return shlex.join(words)

import shlex

from onerec_trt.bench import BenchOptions
from onerec_trt.commands import (
    add_model_argument,
    int_list,
    non_negative_int,
    option,
    options_from,
    positive_int,
)

HELP = "latency, throughput and peak memory of every backend that runs here, side by side"
DESCRIPTION = (HELP + ". Each backend runs in its own process, in alternating order; FP8/BF16 "
               "ratios are paired per repetition. A CPU simulation's ratio says nothing about "
               "GPU speed (GPU evidence: scripts/device_bench.py).")


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_arguments(p):
    from onerec_trt.bench.backends import NAMES

    add_model_argument(p)
    option(p, "--onnx", BenchOptions,
           help="the export stage's folder (default: the run folder holding --model's graphs: "
                "runs/<model>, the folder holding the model folder, runs/default, other runs/*; "
                "if none has, bench exports them into <out>/onnx and skips the backends needing "
                "fp8, plugin graphs or engines, each with the command that makes them)")
    option(p, "--fp8", BenchOptions, help="the quantize stage's folder (default: fp8 beside onnx)")
    option(p, "--plugins", BenchOptions,
           help="the plugins stage's folder (default: plugins beside onnx)")
    option(p, "--engines", BenchOptions,
           help="the build stage's folder, TensorRT plans (default: engines beside onnx)")
    option(p, "--out", BenchOptions,
           help="report folder (default: bench beside onnx; runs/<model>/bench for torch alone)")
    option(p, "--backends", BenchOptions, type=_names,
           help=f"comma-separated subset of: {', '.join(NAMES)} (default: all that can run; "
                "the others are listed with the reason they were skipped)")
    option(p, "--peers", BenchOptions, type=_names,
           help="what users run today, timed beside the backends and checked for the same "
                "items: hf (transformers generate + prefix_allowed_tokens_fn; imported models; a "
                "native model's peer is the torch loop), optimum (reported with why it cannot run)")
    option(p, "--users", BenchOptions, type=positive_int,
           help="time this many held-out test users of the model's dataset (default: 200 with "
                "--peers, else synthetic histories)")
    option(p, "--rounds", BenchOptions, type=positive_int,
           help="with --users/--histories: passes over every user per batch size (replaces "
                "--reps)")
    option(p, "--batch", BenchOptions, field="batches", type=int_list,
           help="users per request, comma-separated (e.g. 1,8,64)")
    option(p, "--histories", BenchOptions, metavar="FILE.npy",
           help="int64 [N, S] requests to time (rows taken in turn); default: synthetic "
                "histories of random item ids (the graphs' cost does not depend on the ids)")
    option(p, "--beam", BenchOptions, type=int,
           help="beam width (default: the exported graphs' beam)")
    option(p, "--topk", BenchOptions, type=int, help="items per user (default: the graphs')")
    option(p, "--reps", BenchOptions,
           help="timed requests per backend and batch size (alternating)")
    option(p, "--warmup", BenchOptions, help="untimed requests first")
    option(p, "--threads", BenchOptions, type=positive_int, help="threads per backend")
    option(p, "--device", BenchOptions, choices=("cpu", "cuda"),
           help="where the torch reference runs")
    option(p, "--max-call-s", BenchOptions,
           help="a backend whose request takes longer stops at that batch size")
    option(p, "--scaling", BenchOptions,
           help="also measure how cost grows with history S, beam B, catalogue, levels L")
    option(p, "--scaling-axes", BenchOptions, type=_names,
           help="comma-separated subset of history,beam,catalogue,levels")
    option(p, "--scaling-users", BenchOptions, help="users per scaling request")
    option(p, "--scaling-reps", BenchOptions, help="timed requests per point")
    option(p, "--seed", BenchOptions, type=non_negative_int, help="synthetic histories' seed")
    option(p, "--force", BenchOptions, help="replace an existing --out")


def run(args) -> int:
    from onerec_trt.bench import bench

    bench(options_from(args, BenchOptions, command=command_line(args)))
    return 0


def command_line(args) -> str:
    """The full command with every option spelled out, so a number can be reproduced."""
    words = ["onerec-trt", "bench"]
    for key, value in sorted(vars(args).items()):
        if key in ("stage", "force") or value is None or value is False or value == []:
            continue
        if key == "reps" and getattr(args, "rounds", None):
            continue  # --rounds replaces it
        flag = "--batch" if key == "batches" else "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        else:
            words += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return shlex.join(words)

#!/usr/bin/env python
"""GPU evidence without TensorRT, in one command (at most ~8 minutes on one H200):

    PYTHONPATH=src python scripts/device_bench.py --out "$OUT"

1. FP8 against bf16 GEMMs (``torch._scaled_mm``, per-tensor scales) at exactly the GEMM shapes
   of one request of the ``small`` and ``paper`` presets, N*B swept;
2. end-to-end generation of the ``paper`` preset (random weights, synthetic 3 x 8192 catalogue)
   in bf16 and with FP8 linear layers, under CUDA graphs: latency, throughput, memory;
3. both next to the analyze stage's roofline prediction.
Writes ``device_bench.json`` into ``--out`` (default ``$OUT``, else ``runs/device``) and prints a
table. Needs only torch, numpy (and triton for the plugin kernel). ``--dry-run`` runs every
part on the CPU at tiny shapes (what the tests do).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
if SRC.is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from onerec_trt.bench.device import (  # noqa: E402
    Budget,
    DeviceOptions,
    device_name,
    gemm_sweep,
    gpu_entry,
    load_roofline,
    save,
)
from onerec_trt.bench.machine import describe_machine  # noqa: E402
from onerec_trt.stage_runner import log_to_stdout  # noqa: E402
from onerec_trt.tables import plain_lines  # noqa: E402

DRY_RUN = dict(
    device="cpu", presets={"small": {"beam": 4, "users": [1, 2]}}, gemm_iters=2, gemm_reps=2,
    e2e_preset="tiny", e2e_config={"num_items": 300, "codebook_sizes": [16, 16, 16]},
    e2e_beam=8, e2e_users=[2, 4], e2e_reps=2, cuda_graphs=False, budget_s=120.0)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT") or "runs/device")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes: checks the code")
    p.add_argument("--calibration", default=None,
                   help="calibration.json of the small model's quantize run (its FP8 scales); "
                        "default: runs/default/fp8/calibration.json if present")
    p.add_argument("--skip-gemm", action="store_true")
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--e2e-users", default=None, help="comma-separated user counts")
    p.add_argument("--beam-step", default="auto", choices=("auto", "plugin", "torch"))
    p.add_argument("--no-cuda-graphs", action="store_true")
    p.add_argument("--gpu-table", default=None, help="gpus.json key for the roofline")
    p.add_argument("--budget-s", type=float, default=None,
                   help="stop starting new measurements after this many seconds (default 400)")
    return p.parse_args(argv)


def options(args) -> DeviceOptions:
    opts = DeviceOptions(**DRY_RUN) if args.dry_run else DeviceOptions()
    default_calib = Path("runs/default/fp8/calibration.json")
    opts.calibration = args.calibration or (str(default_calib) if default_calib.is_file()
                                            else None)
    if args.e2e_users:
        opts.e2e_users = [int(x) for x in args.e2e_users.split(",")]
    opts.beam_step, opts.gpu_table = args.beam_step, args.gpu_table
    opts.cuda_graphs = opts.cuda_graphs and not args.no_cuda_graphs
    if args.budget_s is not None:
        opts.budget_s = args.budget_s
    if opts.e2e_preset and args.skip_e2e:
        opts.e2e_preset = None
    return opts


def print_table(result: dict) -> None:
    print("\n== FP8 vs bf16 GEMMs, one request's GEMMs summed (measured on "
          f"{result['machine'].get('gpu', {}) and result['machine']['gpu']['name'] or 'CPU'}) ==")
    nan = float("nan")
    rows = [[preset, pt["users"], pt["rows_decoder"], t["bf16_ms"], t.get("fp8_ms", nan),
             t.get("speedup", nan), t.get("speedup_with_quantize", nan), t["roofline_speedup"]]
            for preset, sec in (result.get("gemm") or {}).get("presets", {}).items()
            for pt in sec["points"] for t in [pt["totals"]]]
    print("\n".join(plain_lines(["preset", "N", "N*B", "bf16 ms", "fp8 ms", "x", "x+q",
                                 "roofline x"],
                                ["<7", ">6", ">8", ">11.3f", ">11.3f", ">7.2f", ">7.2f", ">12.2f"],
                                rows)))
    e2e = result.get("e2e")
    if not e2e:
        return
    print(f"\n== end-to-end generation, {e2e['preset']} preset, beam {e2e['beam']} "
          f"({e2e['beam_step']}) ==")
    rows = [[users, b["p50_ms"], f["p50_ms"], c["measured_speedup"],
             100 * c["latency_reduction"], 100 * c["throughput_gain"],
             c.get("roofline_speedup") or nan, c.get("bf16_efficiency") or nan,
             b.get("peak_memory_gib", nan)]
            for users, c in e2e["comparison"].items()
            for b, f in [(e2e["bf16"][users], e2e["fp8"][users])]]
    print("\n".join(plain_lines(["N", "bf16 p50", "fp8 p50", "speedup", "lat -%", "thr +%",
                                 "roofline x", "bf16 eff", "bf16 GiB"],
                                [">5", ">11.2f", ">11.2f", ">9.2f", ">8.1f", ">8.1f", ">12.2f",
                                 ">10.2f", ">10.1f"], rows)))
    for users, row in e2e.get("beam_step_timing", {}).items():
        print(f"beam step 0 alone, N={users}: " + ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()))


def main(argv=None) -> int:
    args = parse_args(argv)
    log_to_stdout()  # the sweeps' lines, as the CLI prints them
    opts = options(args)
    import torch

    if opts.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --dry-run on a CPU", file=sys.stderr)
        return 2
    budget = Budget(opts.budget_s)
    roofline = load_roofline()
    gpu_key, gpu = gpu_entry(roofline, opts.gpu_table, device_name(opts.device))
    result = {"command": shlex.join(["PYTHONPATH=src", "python", "scripts/device_bench.py",
                                     *(argv if argv is not None else sys.argv[1:])]),
              "machine": describe_machine(gpu=opts.device == "cuda"),
              "options": opts.__dict__, "roofline": {
                  "gpu": gpu_key, "entry": gpu,
                  "source": "onerec_trt.roofline" if roofline else
                  "unavailable: GEMM formulas derived in bench/device.py"},
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if opts.device != "cuda":
        result["note"] = ("measured on the CPU: checks the code path only; the roofline "
                          f"columns are predictions for {gpu_key}, not comparable")
    if not args.skip_gemm:
        result["gemm"] = gemm_sweep(opts, roofline, gpu, Budget(0.45 * opts.budget_s))
        save(Path(args.out), result)
    if opts.e2e_preset:
        from onerec_trt.bench.gpu_e2e import run_e2e

        result["e2e"] = run_e2e(opts, roofline, gpu, budget)
    result["seconds"] = budget.used()
    path = save(Path(args.out), result)
    print_table(result)
    print(f"\nwrote {path} in {result['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

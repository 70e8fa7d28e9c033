from onerec_trt.commands import (
    add_data_arguments,
    add_histories_argument,
    add_model_argument,
    non_negative_int,
    option,
    options_from,
    positive_int,
)
from onerec_trt.quantize import QuantizeOptions

HELP = "ModelOpt FP8 PTQ of the exported graph, calibrated on real users' training histories"


def add_arguments(p):
    add_model_argument(p)
    option(p, "--onnx", QuantizeOptions, help="the export stage's folder")
    option(p, "--out", QuantizeOptions, help="folder for the FP8 graphs")
    add_data_arguments(p)
    option(p, "--calib-users", QuantizeOptions, help="training-split users to calibrate on")
    option(p, "--calib-batch", QuantizeOptions, help="users per calibration batch")
    option(p, "--calib-method", QuantizeOptions, choices=("max", "mse"),
           help="ModelOpt's FP8 calibration algorithm (default: the policy's, else max; "
                "--search tries both)")
    option(p, "--weight-scales", QuantizeOptions, choices=("per-tensor", "per-channel"),
           help="FP8 GEMM weight scales: one per tensor, or one per output feature (a 1-D "
                "scale in the weight's DequantizeLinear, as TensorRT reads it); inputs stay "
                "per-tensor (default: the policy's, else per-tensor)")
    add_histories_argument(p, QuantizeOptions, aliases=("--calib-data",),
                           instead_of="the dataset's training histories")
    option(p, "--exclude", QuantizeOptions, action="append", metavar="REGEX",
           help="keep matching layers (e.g. '^heads\\\\.') in bf16; repeatable")
    p.add_argument("--quantize-all", action="store_true",
                   help="no default exclusions: the output heads and the context K/V "
                        "projections go to FP8 too (by default they stay bf16)")
    option(p, "--exclusions", QuantizeOptions, help="exclusions.json from 'onerec-trt analyze'")
    option(p, "--calibration", QuantizeOptions,
           help="calibration.json of an earlier run: reuse its scales, skip calibration")
    option(p, "--policy", QuantizeOptions, metavar="FILE",
           help="apply an FP8 policy: the fp8_policy.json or quantize_report.json of a "
                "--search run (reproduces its choice). Default: the model folder's own "
                "fp8_policy.json (the shipped model has one), else the default exclusions")
    option(p, "--search", QuantizeOptions,
           help="choose the policy on validation users (never test): the largest FP8 share "
                "of a request's FLOPs whose overlap@10 with bf16 reaches --target-overlap; "
                "writes search.md (every candidate tried) and records the choice in "
                "quantize_report.json and fp8_policy.json")
    option(p, "--target-overlap", QuantizeOptions, type=float,
           help="the search's overlap@10 target against bf16")
    option(p, "--search-users", QuantizeOptions, type=positive_int,
           help="validation users the search measures on (seeded sample)")
    option(p, "--qad", QuantizeOptions, type=float, metavar="MINUTES",
           help="quantization-aware distillation first (native models and imported Qwen3 "
                "checkpoints that record their training data): a copy of the model with FP8 "
                "fake quantization on its GEMMs learns the model's code distributions (KL, on "
                "its training data) for MINUTES of wall time; the student is written to "
                "OUT/student (its training.json records the teacher's hash, so verify compares "
                "its FP8 graph with the teacher's bf16 graph) and PTQ (and --search) run on its "
                "graphs. 0 = off")
    option(p, "--seed", QuantizeOptions, type=non_negative_int,
           help="the calibration users' sample")
    option(p, "--force", QuantizeOptions, help="replace an existing --out")


def run(args) -> int:
    from onerec_trt.quantize import quantize

    quantize(options_from(args, QuantizeOptions, default_exclusions=not args.quantize_all))
    return 0

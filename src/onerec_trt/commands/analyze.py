from onerec_trt.analysis import AnalyzeOptions
from onerec_trt.commands import (
    add_data_arguments,
    add_histories_argument,
    add_model_argument,
    non_negative_int,
    option,
    options_from,
    positive_int,
)

HELP = "is the model FP8-safe and is FP8 worth it: statistics, FP8 error per layer, roofline"


def _names(text: str) -> list[str]:
    return [] if text.strip().lower() in ("", "none") else [
        t.strip() for t in text.split(",") if t.strip()]


def add_arguments(p):
    add_model_argument(p)
    option(p, "--out", AnalyzeOptions, help="folder for the report")
    option(p, "--force", AnalyzeOptions, help="replace an existing --out")
    g = p.add_argument_group("activations (real users' histories through the real generation)")
    add_data_arguments(g)
    option(g, "--calib-users", AnalyzeOptions, help="training-split users")
    option(g, "--calib-batch", AnalyzeOptions, help="users per batch")
    option(g, "--beam", AnalyzeOptions, help="beam width B of the generation")
    add_histories_argument(g, AnalyzeOptions, aliases=("--calib-data",),
                           instead_of="the dataset's training histories")
    option(g, "--max-rows", AnalyzeOptions,
           help="input rows kept per layer (a uniform sample beyond that)")
    r = p.add_argument_group("reference models")
    option(r, "--references", AnalyzeOptions, type=_names,
           help="comma list of traditional (DCN-v2 on MovieLens-1M) and lm "
                "(all-MiniLM-L6-v2), or 'none'")
    option(r, "--traditional-steps", AnalyzeOptions, help="DCN training steps")
    option(r, "--traditional-samples", AnalyzeOptions,
           help="held-out ratings for the DCN's activations")
    option(r, "--lm-sentences", AnalyzeOptions,
           help="MovieLens titles fed to the language model")
    option(p, "--threshold-db", AnalyzeOptions,
           help="propose excluding layers whose per-tensor FP8 SQNR (weight, input or GEMM "
                "output) is below this")
    f = p.add_argument_group("roofline")
    option(f, "--gpus", AnalyzeOptions, type=_names,
           help="comma list from gpus.json (default: all: H100-SXM, H200, L40S, A100)")
    option(f, "--presets", AnalyzeOptions, type=_names, help="model presets to add (comma list)")
    option(f, "--users", AnalyzeOptions, field="roofline_users", help="users per request N")
    option(f, "--roofline-beam", AnalyzeOptions, type=int,
           help="B for the roofline (default: --beam; 512 for the paper preset)")
    option(f, "--candidates", AnalyzeOptions, field="roofline_candidates",
           help="candidates per user of the DCN's ranking request")
    option(p, "--seed", AnalyzeOptions, type=non_negative_int,
           help="seed of the calibration users and the comparison models")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads: the work is many small ops, and on a busy 2-core "
                        "machine two threads made it 2x slower")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    import torch

    from onerec_trt.analysis import analyze

    torch.set_num_threads(args.threads)
    analyze(options_from(args, AnalyzeOptions), progress=not args.quiet)
    return 0

from onerec_trt.commands import add_model_argument, option, options_from, positive_int
from onerec_trt.run import RunOptions

HELP = "the main job: every stage on one model (default: the shipped model, MovieLens-1M)"


def add_arguments(p):
    add_model_argument(p)
    option(p, "--out", RunOptions, help="run folder (rewritten)")
    option(p, "--users", RunOptions, type=int,
           help="evaluate a seeded sample of test users (default: all)")
    option(p, "--verify-users", RunOptions, type=positive_int, help="users for the FP8 gate")
    option(p, "--histories", RunOptions, metavar="FILE.npy",
           help="requests instead of the model's dataset (default for an untrained model "
                "from 'onerec-trt init': its histories.npy); evaluation is skipped then")
    p.add_argument("--no-analyze", action="store_true", help="skip the analysis stage")
    p.add_argument("--no-bench", action="store_true", help="skip the benchmark")
    p.add_argument("--quiet", action="store_true",
                   help="no progress from evaluate and analyze (a bar on a terminal, a line per "
                        "10%% in a log)")


def run(args) -> int:
    from onerec_trt.run import run as run_all

    reports = run_all(options_from(args, RunOptions, analyze=not args.no_analyze,
                                   bench=not args.no_bench, progress=not args.quiet))
    return 0 if reports["verify"].passed else 1

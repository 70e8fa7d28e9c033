HELP = "the main job: every stage on the built-in default (shipped model, MovieLens-1M)"


def add_arguments(p):
    p.add_argument("--out", default="runs/default", help="run folder (rewritten)")
    p.add_argument("--users", type=int, default=None,
                   help="evaluate a seeded sample of test users (default: all)")
    p.add_argument("--verify-users", type=int, default=1000, help="users for the FP8 gate")
    p.add_argument("--no-analyze", action="store_true", help="skip the analysis stage")
    p.add_argument("--no-bench", action="store_true", help="skip the benchmark")


def run(args) -> int:
    from onerec_trt.pipeline import RunOptions
    from onerec_trt.pipeline import run as run_pipeline

    results = run_pipeline(RunOptions(out=args.out, users=args.users,
                                      verify_users=args.verify_users,
                                      analyze=not args.no_analyze, bench=not args.no_bench))
    return 0 if results["verify"]["pass"] else 1

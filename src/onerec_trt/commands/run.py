HELP = "the main job: every stage on the built-in default (shipped model, MovieLens-1M)"


def add_arguments(p):
    p.add_argument("--out", default="runs/default", help="run folder (rewritten)")
    p.add_argument("--users", type=int, default=None,
                   help="evaluate a seeded sample of test users (default: all)")
    p.add_argument("--verify-users", type=int, default=1000, help="users for the FP8 gate")


def run(args) -> int:
    from pathlib import Path

    from onerec_trt.pipeline import run as run_pipeline

    result = run_pipeline(Path(args.out), users=args.users, verify_users=args.verify_users)
    return 0 if result["verify"]["pass"] else 1

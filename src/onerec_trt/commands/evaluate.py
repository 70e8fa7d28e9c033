from onerec_trt.commands import (
    add_data_arguments,
    add_model_argument,
    non_negative_int,
    option,
    options_from,
)
from onerec_trt.evaluate import EvalOptions

HELP = "Recall/NDCG@5/10 of a model's beam search beside popularity, Markov and item-kNN"
ALIASES = ("eval",)


def add_arguments(p):
    add_model_argument(p)
    add_data_arguments(p)
    option(p, "--split", EvalOptions, choices=("test", "valid"),
           help="the held-out item scored: test (each user's last) or valid (the one before)")
    option(p, "--users", EvalOptions, type=int, help="a seeded sample (default: all)")
    option(p, "--beam", EvalOptions, help="beam width B (results: top 10)")
    option(p, "--baselines", EvalOptions,
           help="also score popularity, Markov and item-kNN on the same split")
    option(p, "--seed", EvalOptions, type=non_negative_int, help="the user sample's seed")
    p.add_argument("--json", default=None, help="write the report here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from onerec_trt.evaluate import evaluate, format_report

    report = evaluate(options_from(args, EvalOptions), progress=not args.quiet)
    print(format_report(report))
    if args.json:
        report.save(args.json)
        print(f"wrote {args.json}")
    return 0

from onerec_trt.commands import add_data_arguments, add_model_argument

HELP = "Recall/NDCG@5/10 of a model's beam search beside popularity, Markov and item-kNN"


def add_arguments(p):
    add_model_argument(p)
    add_data_arguments(p)
    p.add_argument("--split", default="test", choices=("test", "valid"))
    p.add_argument("--users", type=int, default=None, help="a seeded sample (default: all)")
    p.add_argument("--beam", type=int, default=20, help="beam width B (results: top 10)")
    p.add_argument("--baselines", action="store_true",
                   help="also score popularity, Markov and item-kNN on the same split")
    p.add_argument("--json", default=None, help="write the report here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
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

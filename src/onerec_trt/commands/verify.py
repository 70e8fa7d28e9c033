from onerec_trt.commands import add_data_arguments, add_model_argument

HELP = "the accuracy gate: Polygraphy compares a candidate (FP8) with the bf16 reference"
DESCRIPTION = HELP + ". Exit 0: pass, 1: a gate failed, 2: usage error."


def add_arguments(p):
    p.add_argument("--reference", default="runs/default/onnx/reference.cpu.onnx",
                   help="reference graph (ONNX Runtime)")
    p.add_argument("--candidate", default="runs/default/fp8/fp8.cpu.onnx",
                   help="FILE.onnx (ONNX Runtime), FILE.plan (TensorRT), torch, torch:bf16")
    add_model_argument(p)
    add_data_arguments(p)
    p.add_argument("--split", default="test", choices=("test", "valid"))
    p.add_argument("--users", type=int, default=1000, help="held-out users (seeded sample)")
    p.add_argument("--out", default="runs/default/verify", help="report folder")
    p.add_argument("--min-overlap", type=float, default=0.9, help="gate: mean overlap@10")
    p.add_argument("--max-recall-drop", type=float, default=0.01,
                   help="gate: largest relative Recall@10 loss")
    p.add_argument("--max-ndcg-drop", type=float, default=0.01,
                   help="gate: largest relative NDCG@10 loss")
    p.add_argument("--scores-atol", type=float, default=0.5, help="scores tensor tolerance")
    p.add_argument("--scores-rtol", type=float, default=0.1, help="scores tensor tolerance")
    p.add_argument("--scores-quantile", type=float, default=0.99,
                   help="the |difference| quantile checked against the scores tolerances")
    p.add_argument("--force", action="store_true", help="replace an existing --out")


def run(args) -> int:
    from onerec_trt.verify import Gates, VerifyOptions, verify

    report = verify(VerifyOptions(
        reference=args.reference, candidate=args.candidate, model=args.model,
        dataset=args.dataset, data=args.data, columns=args.columns, split=args.split,
        users=args.users, out=args.out, scores_atol=args.scores_atol,
        scores_rtol=args.scores_rtol, scores_quantile=args.scores_quantile, force=args.force,
        gates=Gates(args.min_overlap, args.max_recall_drop, args.max_ndcg_drop)))
    return 0 if report["pass"] else 1

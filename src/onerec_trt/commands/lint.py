HELP = "check ONNX graphs against TensorRT's documented ONNX support (no TensorRT needed)"
DESCRIPTION = (HELP + ": operators and their dtypes, TopK K <= 3840, FP8 Q/DQ placement, "
               "plugin nodes. Exit 0: no errors (warnings are printed), 1: errors, 2: usage.")


def add_arguments(p):
    p.add_argument("files", nargs="+", metavar="FILE", help="ONNX graph(s) to check")
    p.add_argument("--quiet", action="store_true", help="print errors and the summary only")
    p.add_argument("--max-batch", type=int, default=None, metavar="B",
                   help="also check that no tensor reaches 2^31 elements at batch B (what "
                        "'build --max-batch B' checks; TensorRT refuses such tensors)")


def run(args) -> int:
    from onerec_trt.lint import lint

    if args.max_batch is not None and args.max_batch < 1:
        from onerec_trt.errors import user_error

        raise user_error(f"--max-batch {args.max_batch} must be at least 1")
    failed = False
    for path in args.files:
        report = lint(path, max_batch=args.max_batch)
        shown = report.errors if args.quiet else report.problems
        for problem in shown:
            print(f"{path}: {problem}")
        print(report.summary())
        failed = failed or not report.ok
    return 1 if failed else 0

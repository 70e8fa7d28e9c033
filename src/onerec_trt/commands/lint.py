HELP = "check ONNX graphs against TensorRT's documented ONNX support (no TensorRT needed)"
DESCRIPTION = (HELP + ": operators and their dtypes, TopK K <= 3840, FP8 Q/DQ placement, "
               "plugin nodes. Exit 0: no errors (warnings are printed), 1: errors, 2: usage.")


def add_arguments(p):
    p.add_argument("files", nargs="+", metavar="FILE", help="ONNX graph(s) to check")
    p.add_argument("--quiet", action="store_true", help="print errors and the summary only")


def run(args) -> int:
    from onerec_trt.lint import lint

    failed = False
    for path in args.files:
        report = lint(path)
        shown = report.errors if args.quiet else report.problems
        for problem in shown:
            print(f"{path}: {problem}")
        print(report.summary())
        failed = failed or not report.ok
    return 1 if failed else 0

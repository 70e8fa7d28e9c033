HELP = "TensorRT engines (<name>.plan + <name>.json) from the bf16 and FP8 graphs (lint first)"
DESCRIPTION = (HELP + ". Needs TensorRT and an NVIDIA GPU; --print-commands needs neither and "
               "prints the equivalent trtexec / polygraphy convert commands. Exit 0: built, "
               "1: the lint found errors, 2: usage error or TensorRT missing.")


def add_arguments(p):
    p.add_argument("--onnx", action="append", default=None, metavar="FILE",
                   help="graph to build, once per engine; none: runs/default/onnx/"
                        "reference.bf16.onnx and runs/default/fp8/fp8.onnx")
    p.add_argument("--out", default="runs/default/engines", help="folder for the engines")
    p.add_argument("--min-batch", type=int, default=1, help="smallest user batch (profile min)")
    p.add_argument("--opt-batch", type=int, default=32, help="user batch to tune for (opt)")
    p.add_argument("--max-batch", type=int, default=256, help="largest user batch (max)")
    p.add_argument("--opt-level", type=int, default=3, help="builder optimization level 0-5")
    p.add_argument("--workspace", type=int, default=None, metavar="MIB",
                   help="workspace memory limit in MiB; none: TensorRT's default (all GPU "
                        "memory)")
    p.add_argument("--timing-cache", default=None, metavar="FILE",
                   help="timing cache to reuse and update across builds; none: a fresh one "
                        "(saved as timing.cache in --out)")
    p.add_argument("--calibration", default=None, metavar="FILE",
                   help="calibration file hashed into the FP8 metadata; none: "
                        "calibration.json beside the graph")
    p.add_argument("--plugin-module", action="append", default=None,
                   metavar="MODULE[:FUNCTION]",
                   help="Python module registering the plugins (then FUNCTION() is called), "
                        "repeatable, used only for graphs with plugin nodes; none: "
                        "onerec_trt.plugins.tensorrt_plugins:register_plugins")
    p.add_argument("--plugin-library", action="append", default=[], metavar="LIB",
                   help="plugin shared library to load (repeatable)")
    p.add_argument("--print-commands", action="store_true",
                   help="print the equivalent trtexec and polygraphy commands and exit")
    p.add_argument("--force", action="store_true", help="replace an existing --out")


def run(args) -> int:
    from onerec_trt.build import BuildOptions, build

    defaults = BuildOptions()
    result = build(BuildOptions(
        onnx=args.onnx or defaults.onnx, out=args.out, min_batch=args.min_batch,
        opt_batch=args.opt_batch, max_batch=args.max_batch, opt_level=args.opt_level,
        workspace=args.workspace, timing_cache=args.timing_cache, calibration=args.calibration,
        plugin_module=args.plugin_module or defaults.plugin_module,
        plugin_library=args.plugin_library, print_commands=args.print_commands,
        force=args.force))
    return 0 if result["ok"] else 1

from onerec_trt.builder import BuildOptions
from onerec_trt.commands import option, options_from

HELP = "TensorRT engines (<name>.plan + <name>.json) from the bf16 and FP8 graphs (lint first)"
DESCRIPTION = (HELP + ". Needs TensorRT and an NVIDIA GPU; --print-commands needs neither and "
               "prints the equivalent trtexec / polygraphy convert commands. Exit 0: built, "
               "1: the lint found errors, 2: usage error or TensorRT missing.")


def add_arguments(p):
    option(p, "--onnx", BuildOptions, action="append", metavar="FILE",
           help="graph to build, once per engine")
    option(p, "--out", BuildOptions, help="folder for the engines")
    option(p, "--min-batch", BuildOptions, help="smallest user batch (profile min)")
    option(p, "--opt-batch", BuildOptions, help="user batch to tune for (opt)")
    option(p, "--max-batch", BuildOptions, help="largest user batch (max)")
    option(p, "--opt-level", BuildOptions, help="builder optimization level 0-5")
    option(p, "--workspace", BuildOptions, type=int, metavar="MIB",
           help="workspace memory limit in MiB; none: TensorRT's default (all GPU memory)")
    option(p, "--timing-cache", BuildOptions, metavar="FILE",
           help="timing cache to reuse and update across builds; none: a fresh one (saved as "
                "timing.cache in --out)")
    option(p, "--calibration", BuildOptions, metavar="FILE",
           help="calibration file hashed into the FP8 metadata; none: calibration.json beside "
                "the graph")
    option(p, "--plugin-module", BuildOptions, action="append", metavar="MODULE[:FUNCTION]",
           help="Python module registering the plugins (then FUNCTION() is called), "
                "repeatable, used only for graphs with plugin nodes")
    option(p, "--plugin-library", BuildOptions, action="append", metavar="LIB",
           help="plugin shared library to load (repeatable)")
    option(p, "--print-commands", BuildOptions,
           help="print the equivalent trtexec and polygraphy commands and exit")
    option(p, "--force", BuildOptions, help="replace an existing --out")


def run(args) -> int:
    from onerec_trt.builder import build

    return 0 if build(options_from(args, BuildOptions)).ok else 1

from onerec_trt.commands import option, options_from
from onerec_trt.plugins import PluginsOptions

HELP = "swap the standard-op beam search for TensorRT plugin nodes (*.plugins.onnx)"
DESCRIPTION = (
    "Replace each beam step of the exported graphs (the csr step: trie Gathers, LogSoftmax, "
    "TopK) by the onerec::TrieBeamExpand / TrieBeamSelect plugin nodes and the item lookup by "
    "onerec::CodesToItem, reading one packed trie. Writes, into --out, reference.plugins.onnx "
    "and reference.plugins.cpu.onnx from the export stage's graphs (fp8.plugins.onnx and "
    "fp8.plugins.cpu.onnx from the quantize stage's), checks that the CPU renderings give the "
    "same items as the standard-op graphs, and records plugins.json. See docs/plugins.md.")


def add_arguments(p):
    option(p, "--onnx", PluginsOptions, help="the export stage's folder ('' to skip)")
    option(p, "--fp8", PluginsOptions, help="the quantize stage's folder")
    option(p, "--out", PluginsOptions, help="folder for the plugin graphs")
    option(p, "--check-users", PluginsOptions,
           help="synthetic histories both CPU graphs must agree on (0: no check)")
    option(p, "--force", PluginsOptions, help="replace an existing --out")


def run(args) -> int:
    from onerec_trt.plugins import plugins

    plugins(options_from(args, PluginsOptions, onnx=args.onnx or None))
    return 0

HELP = "swap the standard-op beam search for TensorRT plugin nodes (*.plugins.onnx)"
DESCRIPTION = (
    "Replace each beam step of the exported graphs (dense trie tables, LogSoftmax, TopK) by the "
    "onerec::TrieBeamExpand / TrieBeamSelect plugin nodes and the item lookup by "
    "onerec::CodesToItem, reading one compact CSR trie. Writes reference.plugins.onnx and "
    "reference.plugins.cpu.onnx beside the export stage's graphs (fp8.plugins.onnx and "
    "fp8.plugins.cpu.onnx beside the quantize stage's), checks that the CPU renderings give the "
    "same items as the standard-op graphs, and records plugins.json. See docs/plugins.md.")


def add_arguments(p):
    p.add_argument("--onnx", default="runs/default/onnx",
                   help="the export stage's folder ('' to skip)")
    p.add_argument("--fp8", default=None, help="the quantize stage's folder")
    p.add_argument("--check-users", type=int, default=32,
                   help="synthetic histories both CPU graphs must agree on (0: no check)")
    p.add_argument("--force", action="store_true", help="replace existing plugin graphs")


def run(args) -> int:
    from onerec_trt.plugins import PluginSwapOptions, swap

    swap(PluginSwapOptions(onnx=args.onnx or None, fp8=args.fp8, check_users=args.check_users,
                           force=args.force))
    return 0

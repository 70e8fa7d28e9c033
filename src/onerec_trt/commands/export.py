from onerec_trt.commands import add_model_argument, option, options_from
from onerec_trt.export import ExportOptions

HELP = "the whole request (context, L decode steps, beam search) as one ONNX graph"


def add_arguments(p):
    add_model_argument(p)
    option(p, "--out", ExportOptions, help="folder for the graphs")
    option(p, "--beam", ExportOptions, help="beam width B")
    option(p, "--topk", ExportOptions, help="results per user K (<= B)")
    option(p, "--step", ExportOptions, choices=("csr", "dense"),
           help="the beam step written into the graph: csr (standard ops over the trie's "
                "CSR arrays: its size grows with the catalogue's edges) or dense (next-node "
                "tables [nodes, codebook]: a reference for small catalogues only)")
    option(p, "--force", ExportOptions, help="replace an existing --out")


def run(args) -> int:
    from onerec_trt.export import export

    export(options_from(args, ExportOptions))
    return 0

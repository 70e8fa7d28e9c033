from onerec_trt.commands import add_model_argument

HELP = "the whole request (context, L decode steps, beam search) as one ONNX graph"


def add_arguments(p):
    add_model_argument(p)
    p.add_argument("--out", default="runs/default/onnx", help="folder for the graphs")
    p.add_argument("--beam", type=int, default=20, help="beam width B")
    p.add_argument("--topk", type=int, default=10, help="results per user K (<= B)")
    p.add_argument("--plugins", action="store_true",
                   help="also write the plugin-bearing graphs (*.plugins.onnx, *.plugins.cpu.onnx)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")


def run(args) -> int:
    from onerec_trt.export import ExportOptions, export

    export(ExportOptions(model=args.model, out=args.out, beam=args.beam, topk=args.topk,
                         plugins=args.plugins, force=args.force))
    return 0

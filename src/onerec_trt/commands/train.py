from onerec_trt.commands import add_data_arguments, add_filter_arguments

HELP = "train a model (semantic-ID tokenizer + OneRec-V2-style model) on a dataset"


def add_arguments(p):
    add_data_arguments(p, required=True)
    add_filter_arguments(p)
    p.add_argument("--preset", default="small",
                   help="model preset: tiny (tests), small (the shipped model); paper is for "
                        "GPU benchmarks and is not trained")
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--epochs", type=int, default=None, help="default: 60 (early stopping)")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-time budget (55)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (2e-3)")
    p.add_argument("--batch-size", type=int, default=None, help="windows per step (32)")
    p.add_argument("--max-history", type=int, default=None, help="override the preset's S")
    p.add_argument("--dropout", type=float, default=None, help="override the preset's dropout")
    p.add_argument("--d-model", type=int, default=None,
                   help="override the preset's width (small: 64); the SwiGLU hidden width "
                        "follows at 4x")
    p.add_argument("--codebook", type=int, default=None, help="codes per level (256)")
    p.add_argument("--levels", type=int, default=None, help="semantic-ID levels (3)")
    p.add_argument("--prefix-inputs", action="store_true",
                   help="while training, each history item's input embedding also sums the "
                        "embeddings of its semantic-ID prefixes, so rare items share what their "
                        "cluster learned; folded into the item embeddings at the end (the saved "
                        "model and its graphs are unchanged)")
    p.add_argument("--distill", type=float, default=0.0, metavar="W",
                   help="weight of a second decoder loss: match, level by level, the item "
                        "distribution of the model's auxiliary next-item softmax, which ranks "
                        "rarely seen items far better than the code heads learn to (0 = off)")
    p.add_argument("--eval-users", type=int, default=None,
                   help="validation users scored per epoch (1500)")
    p.add_argument("--patience", type=int, default=None,
                   help="epochs without a better validation score before stopping early (6); "
                        "0 = never stop early: run the whole cosine schedule (validation on a "
                        "sample moves by about +-0.005 between epochs, so a short patience can "
                        "stop a run before its learning rate has decayed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from onerec_trt.pipeline import train_stage

    train_stage(args)
    return 0

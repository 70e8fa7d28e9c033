from onerec_trt.commands import (
    add_data_arguments,
    add_filter_arguments,
    non_negative_int,
    option,
    options_from,
    positive_int,
)
from onerec_trt.model.train_stage import TrainConfig, TrainOptions

HELP = "train a model (semantic-ID tokenizer + OneRec-V2-style model) on a dataset"


def add_arguments(p):
    add_data_arguments(p, required=True)
    add_filter_arguments(p)
    option(p, "--preset", TrainOptions,
           help="model preset: tiny (tests), small (the shipped model); paper is for GPU "
                "benchmarks and is not trained ('onerec-trt init' makes one)")
    p.add_argument("--out", required=True, help="model folder to write")
    option(p, "--force", TrainOptions, help="replace an existing --out")
    option(p, "--epochs", TrainConfig, help="at most this many epochs (early stopping)")
    option(p, "--max-minutes", TrainConfig, help="wall-time budget")
    option(p, "--lr", TrainConfig, help="peak learning rate")
    option(p, "--batch-size", TrainConfig, help="windows per step")
    option(p, "--max-history", TrainOptions, type=positive_int, help="override the preset's S")
    option(p, "--dropout", TrainOptions, type=float, help="override the preset's dropout")
    option(p, "--d-model", TrainOptions, type=int,
           help="override the preset's width (small: 64); the SwiGLU hidden width follows at 4x")
    option(p, "--codebook", TrainOptions, type=positive_int,
           help="codes per level (default: the tokenizer's, 256)")
    option(p, "--levels", TrainOptions, type=positive_int,
           help="semantic-ID levels (default: the tokenizer's, 3)")
    option(p, "--prefix-inputs", TrainConfig,
           help="while training, each history item's input embedding also sums the embeddings "
                "of its semantic-ID prefixes, so rare items share what their cluster learned; "
                "folded into the item embeddings at the end (the saved model and its graphs "
                "are unchanged)")
    option(p, "--distill", TrainConfig, metavar="W",
           help="weight of a second decoder loss: match, level by level, the item distribution "
                "of the model's auxiliary next-item softmax, which ranks rarely seen items far "
                "better than the code heads learn to (0 = off)")
    option(p, "--eval-users", TrainConfig, help="validation users scored per epoch")
    option(p, "--patience", TrainConfig,
           help="epochs without a better validation score before stopping early; 0 = never "
                "stop early: run the whole cosine schedule (validation on a sample moves by "
                "about +-0.005 between epochs, so a short patience can stop a run before its "
                "learning rate has decayed)")
    option(p, "--seed", TrainConfig, type=non_negative_int)
    option(p, "--threads", TrainOptions, type=positive_int, help="torch threads (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from onerec_trt.model.train_stage import train_stage

    train_stage(options_from(args, TrainOptions, train=options_from(args, TrainConfig),
                             progress=not args.quiet))
    return 0

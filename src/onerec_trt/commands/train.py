import argparse
from dataclasses import fields, replace

from onerec_trt.commands import (
    add_data_arguments,
    add_filter_arguments,
    non_negative_int,
    option,
    options_from,
    positive_int,
)
from onerec_trt.errors import user_error
from onerec_trt.model.hf.train_lm import LMConfig, LMOptions, lm_train_config
from onerec_trt.model.train_stage import TrainConfig, TrainOptions

HELP = "train a model (semantic-ID tokenizer + OneRec-V2-style model) on a dataset"
DESCRIPTION = (
    HELP + ". --arch onerec (default) writes this project's model folder; --arch qwen3 trains a "
    "small Qwen3 causal LM (transformers) over itemic tokens, <|sid_begin|><s_a_N><s_b_N>"
    "<s_c_N><|sid_end|> an item, writes its Hugging Face checkpoint and item catalogue, and "
    "imports them as the model folder --out.")

ONEREC_ONLY = ("preset", "dropout", "prefix_inputs", "distill")
QWEN3_ONLY = ("layers", "heads", "checkpoint")
_ONEREC, _QWEN3 = TrainConfig(), lm_train_config()


def _both(name: str, fmt: str = "g") -> str:
    """'default: onerec X, qwen3 Y' of a training option whose default depends on --arch."""
    return (f"default: {format(getattr(_ONEREC, name), fmt)} (onerec), "
            f"{format(getattr(_QWEN3, name), fmt)} (qwen3)")


def add_arguments(p):
    p.add_argument("--arch", choices=("onerec", "qwen3"), default="onerec",
                   help="onerec: this project's OneRec-V2-style model; qwen3: a Hugging Face "
                        "Qwen3 causal LM over itemic tokens, imported as a model folder")
    add_data_arguments(p, required=True)
    add_filter_arguments(p)
    p.add_argument("--preset", default=argparse.SUPPRESS,
                   help="onerec only: model preset: tiny (tests), small (the shipped model; the "
                        "default); paper is for GPU benchmarks and is not trained ('onerec-trt "
                        "init' makes one)")
    p.add_argument("--out", required=True, help="model folder to write")
    option(p, "--force", TrainOptions, help="replace an existing --out")
    option(p, "--epochs", TrainConfig, help="at most this many epochs (early stopping)")
    p.add_argument("--max-minutes", type=float, default=argparse.SUPPRESS,
                   help=f"wall-time budget ({_both('max_minutes')}); qwen3's cosine learning "
                        "rate decays over it")
    p.add_argument("--lr", type=float, default=argparse.SUPPRESS,
                   help=f"peak learning rate ({_both('lr')})")
    p.add_argument("--batch-size", type=int, default=argparse.SUPPRESS,
                   help=f"windows per step ({_both('batch_size')})")
    option(p, "--max-history", TrainOptions, type=positive_int,
           help=f"override the preset's S; qwen3: history items in a prompt (default "
                f"{LMConfig.max_history}, 5 tokens each)")
    option(p, "--dropout", TrainOptions, type=float,
           help="onerec only: override the preset's dropout")
    option(p, "--d-model", TrainOptions, type=int,
           help=f"override the preset's width (small: 64); the SwiGLU hidden width follows at "
                f"4x; qwen3: hidden size (default {LMConfig.hidden})")
    p.add_argument("--layers", type=positive_int, default=argparse.SUPPRESS,
                   help=f"qwen3 only: decoder layers (default {LMConfig.layers})")
    p.add_argument("--heads", type=positive_int, default=argparse.SUPPRESS,
                   help=f"qwen3 only: attention heads, dividing --d-model (default "
                        f"{LMConfig.heads})")
    option(p, "--codebook", TrainOptions, type=positive_int,
           help="codes per level (default: the tokenizer's, 256)")
    option(p, "--levels", TrainOptions, type=positive_int,
           help="semantic-ID levels (default: the tokenizer's, 3)")
    option(p, "--prefix-inputs", TrainConfig,
           help="onerec only: while training, each history item's input embedding also sums "
                "the embeddings of its semantic-ID prefixes, so rare items share what their "
                "cluster learned; folded into the item embeddings at the end (the saved model "
                "and its graphs are unchanged)")
    option(p, "--distill", TrainConfig, metavar="W",
           help="onerec only: weight of a second decoder loss: match, level by level, the item "
                "distribution of the model's auxiliary next-item softmax, which ranks rarely "
                "seen items far better than the code heads learn to (0 = off)")
    p.add_argument("--eval-users", type=int, default=argparse.SUPPRESS,
                   help=f"validation users scored per epoch ({_both('eval_users')})")
    option(p, "--patience", TrainConfig,
           help="epochs without a better validation score before stopping early; 0 = never "
                "stop early: run the whole cosine schedule (validation on a sample moves by "
                "about +-0.005 between epochs, so a short patience can stop a run before its "
                "learning rate has decayed)")
    option(p, "--seed", TrainConfig, type=non_negative_int)
    p.add_argument("--checkpoint", default=argparse.SUPPRESS, metavar="DIR",
                   help="qwen3 only: also keep the Hugging Face checkpoint (config.json, "
                        "model.safetensors, tokenizer.json) with catalogue.tsv and training.json "
                        "in DIR (default: a temporary folder, removed after the import)")
    option(p, "--threads", TrainOptions, type=positive_int, help="torch threads (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _refuse(args, names: tuple[str, ...], arch: str) -> None:
    """A user error for options set on the command line that the other --arch takes."""
    given = [n for n in names if getattr(args, n, None) not in (None, False)]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        other = "qwen3" if arch == "onerec" else "onerec"
        raise user_error(f"{flags}: only for --arch {other}, not --arch {arch}",
                         f"leave {'it' if len(given) == 1 else 'them'} out")


def _lm_options(args) -> LMOptions:
    shape = {"hidden": args.d_model, "layers": getattr(args, "layers", None),
             "heads": getattr(args, "heads", None), "max_history": args.max_history}
    model = LMConfig(**{k: v for k, v in shape.items() if v is not None})
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    return options_from(args, LMOptions, model=model, train=replace(lm_train_config(), **given),
                        progress=not args.quiet)


def run(args) -> int:
    if args.arch == "qwen3":
        from onerec_trt.model.hf.train_lm import train_lm

        _refuse(args, ONEREC_ONLY, "qwen3")
        train_lm(_lm_options(args))
        return 0
    from onerec_trt.model.train_stage import train_stage

    _refuse(args, QWEN3_ONLY, "onerec")
    train_stage(options_from(args, TrainOptions, train=options_from(args, TrainConfig),
                             progress=not args.quiet))
    return 0

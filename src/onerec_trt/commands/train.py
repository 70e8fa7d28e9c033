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
from onerec_trt.model.train.defaults import CHOICES
from onerec_trt.model.train.fp8_phase import DEFAULT_SHARE, FROZEN_SHARE, RECALIBRATIONS
from onerec_trt.model.train.qwen3 import LMConfig, LMOptions, lm_train_config
from onerec_trt.model.train.stage import THREADS_HELP, TrainConfig, TrainOptions

HELP = "train a model (semantic-ID tokenizer + OneRec-V2-style model) on a dataset"
DESCRIPTION = (
    HELP + ". --arch onerec (default) writes this project's model folder; --arch qwen3 trains a "
    "small Qwen3 causal LM (transformers) over itemic tokens, <|sid_begin|><s_a_N><s_b_N>"
    "<s_c_N><|sid_end|> an item, writes its Hugging Face checkpoint and item catalogue, and "
    "imports them as the model folder --out.")

EPILOG = """\
options left out are chosen from the data (--arch onerec; printed with their reasons, saved in
training.json; any flag overrides them):
  --max-history    95th percentile of the sequence lengths, 50..200
  --codebook       256 (a catalogue over 65,536 items: the power of two whose square holds it)
  --prefix-inputs, --distill 3
                   on sparse data: 10% or more of the validation targets seen < 10 times
  --epochs         30, or enough for 2,000 steps; the cosine learning rate ends with the run,
                   within --max-minutes (45) when it cannot hold them
  --warmup-steps   200, at most 5% of the steps (of those the budget holds, when it is short);
                   --eval-every: about 30 validations a run

what to expect with the defaults (measured: 1 thread, other jobs on the same 2 cores; test
users; popularity is far below every model; docs/data.md):
  data set: users, interactions   minutes   Recall@10 model / Markov   NDCG@10 model / Markov
  Instacart:    593,   150,000       45          0.123 / 0.094            0.069 / 0.056
  ML-100K:      943,   100,000       27          0.121 / 0.109            0.053 / 0.055
  Ciao:       4,770,    56,943       42          0.074 / 0.053            0.038 / 0.032
  ML-1M:      6,040, 1,000,209       46          0.186 / 0.189            0.095 / 0.107
  Beauty:    22,363,   198,502       45          0.064 / 0.066            0.032 / 0.043
  Budget-bound runs (45 min: ML-1M, Beauty, Instacart) gain from a free machine; where most test
  targets are items seen fewer than 20 times in training (Beauty), Markov stays ahead.
"""

ONEREC_ONLY = ("preset", "dropout", "prefix_inputs", "distill", "eval_every")
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
    p.add_argument("--epochs", type=positive_int, default=argparse.SUPPRESS,
                   help="epochs the cosine learning rate spans (onerec: chosen from the data, "
                        "30 or enough for 2,000 steps; qwen3: 60)")
    p.add_argument("--max-minutes", type=float, default=argparse.SUPPRESS,
                   help=f"wall-time budget ({_both('max_minutes')}); the cosine learning rate "
                        "ends with the run: when the budget cannot hold --epochs, it is "
                        "shortened to what the budget holds (re-estimated as the run goes; "
                        "the run ends at most one validation past the budget); a budget that "
                        "holds under 1,000 steps says so: expect a model near popularity")
    p.add_argument("--warmup-steps", type=positive_int, default=argparse.SUPPRESS,
                   help="linear warm-up steps (onerec: 200, at most 5%% of the schedule; "
                        "qwen3: 200); when --max-minutes shortens the cosine, at most 5%% of "
                        "the steps it holds")
    p.add_argument("--lr", type=float, default=argparse.SUPPRESS,
                   help=f"peak learning rate ({_both('lr')})")
    p.add_argument("--batch-size", type=int, default=argparse.SUPPRESS,
                   help=f"windows per step ({_both('batch_size')})")
    p.add_argument("--max-history", type=positive_int, default=argparse.SUPPRESS,
                   help=f"history items the model reads (onerec: chosen from the data, the "
                        f"95th percentile of sequence lengths in 50..200; qwen3: items in a "
                        f"prompt, default {LMConfig.max_history}, 5 tokens each)")
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
    p.add_argument("--codebook", type=positive_int, default=argparse.SUPPRESS,
                   help="codes per semantic-ID level (onerec: chosen from the data: 256, or "
                        "for a catalogue over 65,536 items the power of two whose square holds "
                        "it; qwen3: 256)")
    option(p, "--levels", TrainOptions, type=positive_int,
           help="semantic-ID levels (default: the tokenizer's, 3)")
    p.add_argument("--prefix-inputs", action=argparse.BooleanOptionalAction,
                   default=argparse.SUPPRESS,
                   help="onerec only (chosen from the data: on for sparse data): while "
                        "training, each history item's input embedding also sums "
                "the embeddings of its semantic-ID prefixes, so rare items share what their "
                "cluster learned; folded into the item embeddings at the end (the saved model "
                "and its graphs are unchanged)")
    p.add_argument("--distill", type=float, default=argparse.SUPPRESS, metavar="W",
                   help="onerec only (chosen from the data: 3 for sparse data, else 0): weight "
                        "of a second decoder loss: match, level by level, the item "
                "distribution of the model's auxiliary next-item softmax, which ranks rarely "
                "seen items far better than the code heads learn to (0 = off)")
    p.add_argument("--eval-users", type=int, default=argparse.SUPPRESS,
                   help=f"validation users scored per epoch ({_both('eval_users')})")
    option(p, "--patience", TrainConfig,
           help="validations without a better mean of the last 3 validation scores before "
                "stopping early, never before half the schedule; 0 = never stop early (the "
                "best checkpoint is kept either way)")
    p.add_argument("--eval-every", type=positive_int, default=argparse.SUPPRESS, metavar="N",
                   help="onerec only: validate every N epochs (chosen from the data: about 30 "
                        "validations a run; the last epoch is always validated)")
    p.add_argument("--fp8-aware", type=float, nargs="?", const=DEFAULT_SHARE,
                   default=argparse.SUPPRESS, metavar="SHARE",
                   help=f"train the last SHARE of the budgeted steps (default "
                        f"{DEFAULT_SHARE:g}) with ModelOpt FP8 fake quantization on every GEMM "
                        "but the output heads (E4M3 weights and inputs, per tensor), amax "
                        f"recalibrated on the latest training batches {RECALIBRATIONS} times, "
                        f"then frozen for the last {FROZEN_SHARE * 100:.0f}%% of that phase; the "
                        "folder holds a plain model (its bf16 graph is the reference); the best "
                        "checkpoint comes from that phase, early stopping waits for its frozen "
                        "end; training.json records it under fp8_aware")
    option(p, "--seed", TrainConfig, type=non_negative_int,
           help="seed of the tokenizer, the weights, the batch order and the validation users")
    p.add_argument("--checkpoint", default=argparse.SUPPRESS, metavar="DIR",
                   help="qwen3 only: also keep the Hugging Face checkpoint (config.json, "
                        "model.safetensors, tokenizer.json) with catalogue.tsv and training.json "
                        "in DIR (default: a temporary folder, removed after the import)")
    option(p, "--threads", TrainOptions, type=positive_int, help=THREADS_HELP)
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
             "heads": getattr(args, "heads", None),
             "max_history": getattr(args, "max_history", None)}
    model = LMConfig(**{k: v for k, v in shape.items() if v is not None})
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    return options_from(args, LMOptions, model=model, train=replace(lm_train_config(), **given),
                        progress=not args.quiet)


def run(args) -> int:
    if args.arch == "qwen3":
        from onerec_trt.model.train.qwen3 import train_lm

        _refuse(args, ONEREC_ONLY, "qwen3")
        train_lm(_lm_options(args))
        return 0
    from onerec_trt.model.train.stage import train_stage

    _refuse(args, QWEN3_ONLY, "onerec")
    auto = tuple(name for name in CHOICES if not hasattr(args, name))
    train_stage(options_from(args, TrainOptions, train=options_from(args, TrainConfig),
                             auto=auto, progress=not args.quiet))
    return 0

from onerec_trt.commands import (
    add_data_arguments,
    non_negative_int,
    option,
    options_from,
    positive_int,
)
from onerec_trt.model.hf_import.stage import ImportOptions

HELP = "bring your own model: a Hugging Face checkpoint + item catalogue, or a protocol factory"
DESCRIPTION = (
    HELP + ". Writes a model folder every later stage takes (--model OUT). Checkpoints: "
    "transformers' Qwen3, Qwen2 and Llama causal LMs (decoder-only, OneRec-Foundation / "
    "MiniOneRec style) and T5 (encoder-decoder, TIGER style), with config.json, safetensors "
    "weights and tokenizer.json; a checkpoint that asks for trust_remote_code is refused. "
    "Catalogue: a TSV with a header, item_id<TAB>code tokens (<s_a_5><s_b_17><s_c_200>); model "
    "item ids are 1..N in row order. docs/byom.md has the details.")


def add_arguments(p):
    p.add_argument("--hf", metavar="DIR", help="a transformers checkpoint folder")
    p.add_argument("--catalogue", metavar="FILE",
                   help="item catalogue TSV: item_id<TAB>codes (one row per item)")
    p.add_argument("--factory", metavar="MODULE:FUNCTION",
                   help="instead of --hf: a function of your own code (imported from your "
                        "environment) returning a torch module that implements the protocol "
                        "(model/protocol.py) and has max_history")
    option(p, "--token-pattern", ImportOptions,
           help="the catalogue's codes column holds integers (5 17 200): turn code c of level "
                "t into a token with this pattern, {letter} = a, b, c... {level} = 0, 1, 2... "
                "e.g. '<s_{letter}_{code}>'")
    option(p, "--template", ImportOptions,
           help="the prompt: {history} once, literal tokens around it (default decoder-only: "
                "'{history}<|sid_begin|>' where the tokenizer has it; T5: '{history}</s>')")
    option(p, "--item-template", ImportOptions,
           help="one history item: {codes} once (default: '<|sid_begin|>{codes}<|sid_end|>' "
                "where the tokenizer has both, else '{codes}')")
    option(p, "--max-history", ImportOptions, type=positive_int,
           help="S: the most recent history items a prompt holds (static in the graphs)")
    add_data_arguments(p)
    option(p, "--histories", ImportOptions, type=positive_int,
           help="synthetic requests written to histories.npy (for --histories where no "
                "--dataset is recorded)")
    option(p, "--seed", ImportOptions, type=non_negative_int, help="of the synthetic requests")
    p.add_argument("--out", required=True, help="model folder to write")
    option(p, "--force", ImportOptions, help="replace an existing --out")


def run(args) -> int:
    from onerec_trt.model.hf_import.stage import import_checkpoint

    import_checkpoint(options_from(args, ImportOptions))
    return 0

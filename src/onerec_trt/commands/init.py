from onerec_trt.commands import non_negative_int, option, options_from, positive_int
from onerec_trt.model.init.stage import InitOptions

HELP = "an untrained model of any size: random weights and a synthetic catalogue, no data"
DESCRIPTION = (HELP + ". Every later stage takes it (--model OUT); it holds histories.npy, "
               "synthetic requests for --histories. For scale and speed, never accuracy.")


def add_arguments(p):
    option(p, "--preset", InitOptions, help="model preset (tiny, small, paper)")
    option(p, "--items", InitOptions, help="catalogue size N (model item ids 1..N)")
    option(p, "--codebook", InitOptions, type=positive_int, help="codes per semantic-ID level")
    option(p, "--levels", InitOptions, type=positive_int, help="semantic-ID levels")
    option(p, "--histories", InitOptions, help="synthetic requests written to histories.npy")
    option(p, "--seed", InitOptions, type=non_negative_int, help="weights, catalogue and requests")
    p.add_argument("--out", required=True, help="model folder to write")
    option(p, "--force", InitOptions, help="replace an existing --out")


def run(args) -> int:
    from onerec_trt.model.init.stage import init_stage

    init_stage(options_from(args, InitOptions))
    return 0

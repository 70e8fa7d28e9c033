import argparse

from onerec_trt.commands import (
    add_data_arguments,
    add_model_argument,
    non_negative_int,
    option,
    options_from,
    positive_int,
)
from onerec_trt.verify import Gates, VerifyOptions

HELP = "the accuracy gate: Polygraphy compares a candidate (FP8) with the bf16 reference"
DESCRIPTION = HELP + ". Exit 0: pass, 1: a gate failed, 2: usage error."


def add_arguments(p):
    option(p, "--reference", VerifyOptions, help="reference graph (ONNX Runtime)")
    option(p, "--candidate", VerifyOptions,
           help="FILE.onnx (ONNX Runtime; plugin graphs too), FILE.plan (TensorRT), torch, "
                "torch:bf16, or hf: transformers' own generate with the catalogue trie as "
                "prefix_allowed_tokens_fn (models made by 'onerec-trt import'; the oracle)")
    add_model_argument(p)
    add_data_arguments(p)
    option(p, "--histories", VerifyOptions, metavar="FILE.npy",
           help="int64 [N, S] requests (model item ids, 0 = left padding) instead of a "
                "dataset's held-out users: agreement only, no Recall/NDCG (e.g. the "
                "histories.npy 'onerec-trt init' writes)")
    option(p, "--split", VerifyOptions, choices=("test", "valid"),
           help="held-out users whose Recall/NDCG gates are judged: test, or valid while "
                "choosing anything (a policy, a threshold)")
    option(p, "--users", VerifyOptions, type=positive_int, help="held-out users (seeded sample)")
    option(p, "--batch", VerifyOptions, type=positive_int, help="users per inference call")
    option(p, "--out", VerifyOptions, help="report folder")
    option(p, "--min-overlap", Gates, field="min_overlap_at_10", help="gate: mean overlap@10")
    option(p, "--max-recall-drop", Gates,
           help="gate: the non-inferiority margin of the relative Recall@10 loss")
    option(p, "--max-ndcg-drop", Gates,
           help="gate: the non-inferiority margin of the relative NDCG@10 loss")
    option(p, "--confidence", Gates, type=_level,
           help="two-sided CI level of the Recall/NDCG gates (each one-sided decision at half "
                "of 1 - level)")
    option(p, "--scores-atol", VerifyOptions, help="scores tensor tolerance")
    option(p, "--scores-rtol", VerifyOptions, help="scores tensor tolerance")
    option(p, "--scores-quantile", VerifyOptions,
           help="the |difference| quantile checked against the scores tolerances")
    option(p, "--seed", VerifyOptions, type=non_negative_int, help="the user sample's seed")
    option(p, "--force", VerifyOptions, help="replace an existing --out")


def _level(text: str) -> float:
    """argparse ``type`` of --confidence: a level strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number like 0.95, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1, got {value}")
    return value


def run(args) -> int:
    from onerec_trt.commands.backends import verify_backends
    from onerec_trt.stage_runner import check_stage_out
    from onerec_trt.verify import verify

    opts = options_from(args, VerifyOptions, gates=options_from(args, Gates))
    check_stage_out(opts)  # the stage's own --out check, before the backends load anything
    report = verify(opts, *verify_backends(opts))
    return 0 if report.passed else 1

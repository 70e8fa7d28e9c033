"""One module per CLI stage: ``HELP``, ``add_arguments(parser)`` and ``run(args) -> exit code``.

Command modules import only argparse at module level (``--help`` stays fast); the stage's
library function is imported inside ``run``.
"""

from __future__ import annotations

import argparse

DATA_HELP = ("ml-1m (built in), beauty (--data Beauty.txt), sequences (--data FILE: "
             "'user item item ...' a line), table (--data CSV/TSV/Parquet, with --columns)")


def add_data_arguments(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--dataset", required=required, default=None,
                   help=DATA_HELP + ("" if required else "; default: the model's own"))
    p.add_argument("--data", default=None, help="the dataset's file (see --dataset)")
    p.add_argument("--columns", default=None,
                   help="for --dataset table: user=COL,item=COL[,time=COL] (time optional: "
                        "file order then)")


def add_filter_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-user", type=int, default=3,
                   help="drop users with fewer interactions (at least 3: leave-one-out)")
    p.add_argument("--min-item", type=int, default=1, help="drop items with fewer interactions")
    p.add_argument("--kcore", type=int, default=0,
                   help="repeat both filters with this threshold until they hold (k-core)")


def add_model_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default",
                   help="model folder written by 'onerec-trt train', or 'default' (the shipped "
                        "model: small preset trained on MovieLens-1M)")

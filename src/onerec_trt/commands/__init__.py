"""One module per CLI stage: ``HELP``, ``add_arguments(parser)`` and ``run(args) -> exit code``.

Command modules import only argparse and the stages' options dataclasses at module level
(``--help`` stays fast: the stage packages' ``__init__`` modules are light); the stage's
implementation is imported inside ``run``. Every default lives in the options dataclass:
``option`` reads it from there, ``options_from`` builds the options from the parsed arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def default_of(options: type, name: str) -> Any:
    """The default of field ``name`` of an options dataclass."""
    for f in dataclasses.fields(options):
        if f.name == name:
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            return None if f.default is dataclasses.MISSING else f.default
    raise KeyError(f"{options.__name__} has no field {name!r}")


class AppendOrReplace(argparse.Action):
    """``action="append"`` whose first use replaces the default list instead of adding to it
    (argparse's own appends to the default)."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = getattr(namespace, self.dest, None)
        items = [] if items is None or items is self.default else list(items)
        setattr(namespace, self.dest, [*items, values])


def option(p, flag: str, options: type, *, field: str | None = None,
           aliases: tuple[str, ...] = (), **kwargs) -> None:
    """``p.add_argument(flag, *aliases, ...)`` with the default of ``options``' field (named
    after the flag unless ``field`` says otherwise); booleans become ``store_true`` flags."""
    name = field or flag.lstrip("-").replace("-", "_")
    default = default_of(options, name)
    if kwargs.get("action") == "append":
        kwargs["action"] = AppendOrReplace
    elif isinstance(default, bool) and "action" not in kwargs:
        kwargs["action"] = "store_true"
    elif "type" not in kwargs and "action" not in kwargs and isinstance(default, int | float):
        kwargs["type"] = type(default)
    p.add_argument(flag, *aliases, default=default, dest=name, **kwargs)


def positive_int(text: str) -> int:
    """argparse ``type`` of counts that have no "0 means default" (--threads, --codebook,
    --levels, --max-history): 0 and negatives are usage errors, not silently replaced."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse ``type`` of seeds: any integer from 0 up (numpy refuses negative seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def int_list(text: str) -> list[int]:
    """argparse ``type`` of "B,B,..." options (batch sizes)."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 4,8,16, got {text!r}") from None


def positive_int_list(text: str) -> list[int]:
    """``int_list`` of at least one value, each positive."""
    values = int_list(text)
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,2,4, got {text!r}")
    return values


def check_json(args: argparse.Namespace) -> None:
    """Before any work (``cli.main`` calls it for every command): ``--json FILE``, which the
    command itself writes (evaluate, triton load), must be writable and must not overwrite an
    input (``artifacts.check_file_out``). ``--out`` is the stage's: the stage runner checks it,
    for a Python caller too (``stage_runner.run_stage``)."""
    from onerec_trt.artifacts import check_file_out, inputs_of

    if getattr(args, "json", None):
        check_file_out(args.json, inputs_of(args))


def options_from(args: argparse.Namespace, options: type[T], **overrides) -> T:
    """The options dataclass filled from the parsed arguments of the same names."""
    names = {f.name for f in dataclasses.fields(options)}
    given = {k: v for k, v in vars(args).items() if k in names}
    return options(**{**given, **overrides})

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
    from onerec_trt.model.train.config import DataOptions

    option(p, "--min-user", DataOptions,
           help="drop users with fewer interactions (at least 3: leave-one-out)")
    option(p, "--min-item", DataOptions, help="drop items with fewer interactions")
    option(p, "--kcore", DataOptions,
           help="repeat both filters with this threshold until they hold (k-core)")


def add_histories_argument(p, options: type, field: str = "histories",
                           aliases: tuple[str, ...] = (), instead_of: str = "the dataset") -> None:
    """``--histories FILE.npy``: requests where there is no dataset (or none wanted)."""
    option(p, "--histories", options, field=field, aliases=aliases, metavar="FILE.npy",
           help=f"int64 [N, S] requests (model item ids, 0 = left padding) instead of "
                f"{instead_of}, e.g. the histories.npy of 'onerec-trt init'")


def add_model_argument(p: argparse.ArgumentParser, default: str = "default") -> None:
    p.add_argument("--model", default=default,
                   help="model folder written by 'onerec-trt train', 'init' or 'import', or a "
                        "shipped model: 'default' (small preset trained on MovieLens-1M) or "
                        "'qwen3-ml1m' (a transformers Qwen3 trained on it)")
    p.add_argument("--factory", metavar="MODULE:FUNCTION", default=None,
                   help="for a model imported with 'import --factory': the factory you trust "
                        "it to run, the same name its factory.json records (a folder never "
                        "chooses code: without this it is refused)")

"""The command line: a thin shell. Each stage lives in ``onerec_trt/commands/<stage>.py``."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import sys
import textwrap

from onerec_trt.commands import check_json
from onerec_trt.errors import UserError, disk_error
from onerec_trt.model.hf.trust import trusted_factory
from onerec_trt.stage_runner import log_to_stdout

# Stages in pipeline order; each name is a module in onerec_trt.commands (or in MODULES).
COMMANDS = ("run", "init", "train", "import", "evaluate", "analyze", "export", "quantize",
            "plugins", "lint", "build", "verify", "bench", "triton")


MODULES = {"import": "import_model"}  # a stage whose name is not a module name


def _module(name: str):
    return importlib.import_module(f"onerec_trt.commands.{MODULES.get(name, name)}")


class StageHelpFormatter(argparse.RawDescriptionHelpFormatter,
                         argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the options' help, unless the help already says its default or the default
    is None (an option whose absence means something the help explains); the description
    (wrapped here) and an epilog (a stage's ``EPILOG``, e.g. a table) kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or re.search(r"\bdefaults?\b(?!/)", text):
            return text
        return super()._get_help_string(action)


def get_parser() -> argparse.ArgumentParser:
    modules = {name: _module(name) for name in COMMANDS}
    names = {n: " ".join([n, *(f"({a})" for a in getattr(m, "ALIASES", ()))])
             for n, m in modules.items()}
    width = max(map(len, names.values())) + 2
    parser = argparse.ArgumentParser(
        prog="onerec-trt",
        description="TensorRT FP8 compilation backend for OneRec-V2-style generative "
                    "recommenders.\n\nstages (in pipeline order):\n"
                    + "\n".join(f"  {names[n]:<{width}}{m.HELP}" for n, m in modules.items())
                    + "\n\n'onerec-trt STAGE --help' explains each stage.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    # the stages are listed once, above (aligned, one line each): no help= on each sub-parser
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", help="one of the stages above")
    for name, module in modules.items():
        p = sub.add_parser(name, aliases=getattr(module, "ALIASES", ()),
                           description=textwrap.fill(getattr(module, "DESCRIPTION",
                                                             module.HELP), 90),
                           epilog=getattr(module, "EPILOG", None),
                           formatter_class=StageHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(stage=name)  # an alias (eval) runs its stage (evaluate)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, like Ctrl-C's KeyboardInterrupt: every staged
    folder and temporary file is removed on the way out."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def _on_sigterm(handler):
    """Install ``handler`` for SIGTERM and return the previous one (None outside the main
    thread, where Python allows no handlers, and for a ``None`` handler)."""
    if handler is None:
        return None
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.stage is None:
        parser.print_help()
        return 2
    module = _module(args.stage)
    log_to_stdout()  # what the stages log (logging, INFO) is the CLI's output, line by line
    # 'triton serve' installs its own handlers for both signals (a flag) inside run()
    previous = _on_sigterm(_terminate)
    try:
        check_json(args)  # --out: each stage checks it (stage_runner), before any work
        with trusted_factory(getattr(args, "factory", None)):  # the user's word (--factory)
            return module.run(args)
    except UserError as exc:
        print(f"onerec-trt {args.stage}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except BrokenPipeError:  # 'onerec-trt ... | head': the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 128 + signal.SIGPIPE
    except Exception as exc:  # a full disk where no stage turned it into a UserError
        reason = disk_error(exc)
        if reason is None:
            raise
        name = getattr(exc, "filename", None)
        print(f"onerec-trt {args.stage}: error: could not write{f' {name}' if name else ''}: "
              f"{reason}", file=sys.stderr)
        return UserError.exit_code
    finally:
        _on_sigterm(previous)


if __name__ == "__main__":
    sys.exit(main())

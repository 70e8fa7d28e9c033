"""A model folder never chooses code: a factory folder's ``factory.json`` records the
``module:function`` it was imported with, and loading it calls that function only when the user
named the same function (``--factory`` on the command line, ``trusted_factory`` in Python, or
the ``ONEREC_TRT_FACTORY`` environment variable). Otherwise a folder someone sends
(``"factory": "os:abort"``) would run its code at ``export``.

The name travels in the environment, so worker processes (bench) see it too; the context
manager restores the previous value. This module imports nothing heavy (the CLI uses it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from onerec_trt.errors import user_error

FACTORY_ENV = "ONEREC_TRT_FACTORY"
_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def is_factory_name(name: object) -> bool:
    """``module.path:function`` (identifiers only)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


@contextmanager
def trusted_factory(name: str | None) -> Iterator[None]:
    """Within the block, a factory folder that records ``name`` may be loaded (None: no
    change)."""
    if not name:
        yield
        return
    previous = os.environ.get(FACTORY_ENV)
    os.environ[FACTORY_ENV] = name
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(FACTORY_ENV, None)
        else:
            os.environ[FACTORY_ENV] = previous


def named_factory() -> str | None:
    """The factory the user named for this process (None: none)."""
    return os.environ.get(FACTORY_ENV) or None


def check_factory(folder: Path, recorded: object, named: str | None) -> str:
    """The factory to call for ``folder``: its recorded name, only when the user named exactly
    that one. Runs before anything is imported."""
    if not is_factory_name(recorded):
        raise user_error(f"{folder / 'factory.json'}: 'factory' is {recorded!r}, not "
                         "module:function", "import the model again (onerec-trt import "
                                            "--factory ...)")
    how = f"pass --factory {recorded} (Python: with trusted_factory({recorded!r}): ...)"
    if named is None:
        raise user_error(f"{folder} runs code: its factory.json names {recorded}, which is "
                         "called only when you name it yourself", how)
    if named != recorded:
        raise user_error(f"--factory {named} is not the factory {folder} was imported with "
                         f"({recorded})", how)
    return recorded

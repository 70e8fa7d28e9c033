"""TensorRT itself: importing it with one clear line when it is missing, the version this
project needs (one gate: ``plugins.spec.MIN_TENSORRT``, which pyproject's ``tensorrt`` extra
repeats), the plugin libraries and modules an engine build or load needs first, and which of
them an engine's metadata may ask for (``plugins_to_load``: only this project's own registration
or what the user named).

The builder and the runtime both use this module; neither imports the other.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from onerec_trt.backends.metadata import parse_version
from onerec_trt.errors import user_error
from onerec_trt.plugins.spec import MIN_TENSORRT, version_text

MIN_VERSION = MIN_TENSORRT
INSTALL = (f"pip install 'onerec-trt[tensorrt]' (TensorRT >= {version_text(MIN_VERSION)} from "
           "NVIDIA's index) on a machine with an NVIDIA GPU; see docs/tensorrt.md")


def import_tensorrt():
    """``import tensorrt``, or one clear line saying it is missing and what to install."""
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:  # OSError: the bindings without libnvinfer
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise user_error(f"TensorRT is not installed ({detail}): {INSTALL}") from None
    check_version(trt.__version__)
    return trt


# TensorRT 11.1-11.2.x: AOT plugins leak a CUDA module per shape change (NVIDIA/TensorRT#4849),
# so a server that sees many batch sizes grows without bound.
LEAKY_AOT_PLUGINS = ((11, 1), (11, 2))


def check_version(version: str) -> list[str]:
    """TensorRT older than MIN_VERSION: one clear line (AOT Python plugins arrived in 10.9;
    strongly typed networks, INT64, BF16 and FP8 in 10.0). Returns warnings about a version
    that works but has a known problem."""
    parsed = parse_version(version)[:2]
    if parsed < MIN_VERSION:
        raise user_error(f"TensorRT {version} is too old: this project needs TensorRT >= "
                         f"{version_text(MIN_VERSION)} (tensorrt.plugin.aot_impl for the "
                         f"plugins; strongly typed networks, INT64, BF16 and FP8): {INSTALL}")
    low, high = LEAKY_AOT_PLUGINS
    if low <= parsed <= high:
        return [f"TensorRT {version}: AOT plugins leak a CUDA module on every input shape "
                f"change (NVIDIA/TensorRT#4849, 11.1-11.2): memory grows with each new batch "
                f"size; use 10.x (pip install 'onerec-trt[tensorrt]') or a later 11.x"]
    return []


def version_notes(version: str) -> list[str]:
    """Warnings about a TensorRT the project runs with but did not check against: a release
    with a known problem (``check_version``), older than the operator table the lint checks
    graphs with (``lint/trt_ops.json``), or of a newer major than that table."""
    from onerec_trt.lint.optable import load_table

    notes = check_version(version)
    table = load_table().tensorrt_version
    ours, theirs = parse_version(version)[:2], parse_version(table)[:2]
    if ours < theirs:
        notes.append(f"TensorRT {version} is older than the {table} operator table 'onerec-trt "
                     f"lint' checks graphs against: an op or dtype the lint passes may be "
                     f"refused by this parser")
    elif ours[0] > theirs[0]:
        notes.append(f"TensorRT {version} is a newer major than the {table} operator table "
                     f"'onerec-trt lint' checks graphs against and the tests cover: the "
                     f"tensorrt extra pins tensorrt-cu12 <11")
    return notes


def load_libraries(registry, libraries, what: str) -> list:
    """``registry.load_library`` for each plugin library, refusing a missing file first and a
    failed load (None) at once: otherwise it surfaces later as an opaque parse or
    deserialization error. Returns the library handles (keep them alive)."""
    handles = []
    for library in libraries:
        path = Path(library)
        if not path.is_file():
            raise user_error(f"{what}: plugin library not found: {path}")
        handle = registry.load_library(str(path))
        if handle is None:
            raise user_error(f"{what}: TensorRT could not load plugin library {path}",
                             "its log above says why (a missing dependency, another "
                             "TensorRT version)")
        handles.append(handle)
    return handles


# This project's plugin registration: the only plugin code an engine's metadata may name by
# itself (builder.DEFAULT_PLUGIN_MODULE is the first; the engines layer cannot import it).
OWN_PLUGIN_MODULES = ("onerec_trt.plugins.tensorrt_plugins:register_plugins",
                      "onerec_trt.plugins.tensorrt_plugins")


@dataclass(frozen=True)
class PluginsToLoad:
    modules: list[str]
    libraries: list[str]


def plugins_to_load(build: object, modules: Sequence[str] = (),
                    libraries: Sequence[str] = (), what: str = "engine") -> PluginsToLoad:
    """What an engine load may import and load: the modules and libraries its metadata's
    ``build`` records, each only where this project wrote it (``OWN_PLUGIN_MODULES``) or the
    user named it at load time (``modules`` / ``libraries``), plus whatever the user named.
    Anything else in the metadata (a folder someone sent) is refused before anything runs."""
    build = build if isinstance(build, dict) else {}
    recorded_modules = _names(build.get("plugin_modules"), "plugin_modules", what)
    recorded_libraries = _names(build.get("plugin_libraries"), "plugin_libraries", what)
    named_paths = {_resolved(lib) for lib in libraries}
    foreign = [m for m in recorded_modules if m not in OWN_PLUGIN_MODULES and m not in modules]
    foreign += [lib for lib in recorded_libraries if _resolved(lib) not in named_paths]
    if foreign:
        raise user_error(f"{what}: its metadata asks to load plugin code you did not name: "
                         f"{', '.join(foreign)}",
                         "an engine's metadata never chooses code: name each plugin module "
                         "and library yourself when you load it (load(plan, plugin_modules=..., "
                         "plugin_libraries=...)) if you trust it")
    own = [m for m in recorded_modules if m in OWN_PLUGIN_MODULES]
    return PluginsToLoad(_unique([*own, *modules]), _unique(list(libraries)))


def _names(value: object, key: str, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise user_error(f"{what}: metadata build.{key} is not a list of names: {value!r}")
    return value


def _resolved(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def load_plugin_module(spec: str) -> None:
    """``MODULE[:FUNCTION]``: import the module, then call FUNCTION() if one is named."""
    module, _, function = spec.partition(":")
    loaded = importlib.import_module(module)
    if function:
        getattr(loaded, function)()

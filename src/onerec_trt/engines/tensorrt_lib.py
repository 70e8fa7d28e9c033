"""TensorRT itself: importing it with one clear line when it is missing, the version this
project needs (one gate: ``plugins.spec.MIN_TENSORRT``, which pyproject's ``tensorrt`` extra
repeats), the plugin libraries and modules an engine build or load needs first.

The builder and the runtime both use this module; neither imports the other.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from onerec_trt.engines.metadata import parse_version
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


def check_version(version: str) -> None:
    """TensorRT older than MIN_VERSION: one clear line (AOT Python plugins arrived in 10.9;
    strongly typed networks, INT64, BF16 and FP8 in 10.0)."""
    if parse_version(version)[:2] < MIN_VERSION:
        raise user_error(f"TensorRT {version} is too old: this project needs TensorRT >= "
                         f"{version_text(MIN_VERSION)} (tensorrt.plugin.aot_impl for the "
                         f"plugins; strongly typed networks, INT64, BF16 and FP8): {INSTALL}")


def version_notes(version: str) -> list[str]:
    """Warnings about a TensorRT the project runs with but did not check against: older than
    the operator table the lint checks graphs with (``lint/trt_ops.json``)."""
    from onerec_trt.lint.optable import load_table

    table = load_table().tensorrt_version
    if parse_version(version)[:2] < parse_version(table)[:2]:
        return [f"TensorRT {version} is older than the {table} operator table 'onerec-trt "
                f"lint' checks graphs against: an op or dtype the lint passes may be refused "
                f"by this parser"]
    return []


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


def load_plugin_module(spec: str) -> None:
    """``MODULE[:FUNCTION]``: import the module, then call FUNCTION() if one is named."""
    module, _, function = spec.partition(":")
    loaded = importlib.import_module(module)
    if function:
        getattr(loaded, function)()

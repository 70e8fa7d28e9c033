"""TensorRT itself: importing it with one clear line when it is missing, the version this
project needs, and the plugin modules an engine build or load imports first.

The builder and the runtime both use this module; neither imports the other.
"""

from __future__ import annotations

import importlib

from onerec_trt.engines.metadata import parse_version
from onerec_trt.errors import user_error

INSTALL = ("pip install 'onerec-trt[tensorrt]' (TensorRT >= 10.7 from NVIDIA's index) on a "
           "machine with an NVIDIA GPU; see docs/tensorrt.md")
MIN_VERSION = (10, 0)


def import_tensorrt():
    """``import tensorrt``, or one clear line saying it is missing and what to install."""
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:  # OSError: the bindings without libnvinfer
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise user_error(f"TensorRT is not installed ({detail}): {INSTALL}") from None
    if parse_version(trt.__version__)[:2] < MIN_VERSION:
        raise user_error(f"TensorRT {trt.__version__} is too old: this project needs TensorRT "
                         f">= 10 (strongly typed networks, INT64, BF16 and FP8): {INSTALL}")
    return trt


def load_plugin_module(spec: str) -> None:
    """``MODULE[:FUNCTION]``: import the module, then call FUNCTION() if one is named."""
    module, _, function = spec.partition(":")
    loaded = importlib.import_module(module)
    if function:
        getattr(loaded, function)()

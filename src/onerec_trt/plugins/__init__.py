"""The plugins stage and the beam-search decoder plugins: the plugin set (``spec``), the torch
reference (``reference``), Triton kernels (``kernels``), the plugins as beam steps of the one
generation loop (``steps``), TensorRT registration (``tensorrt_plugins``, ``aot``), ONNX Runtime
custom ops (``ort_ops``) and the graph swap (``graph_swap``, ``match``).

The stage (``plugins``, body in ``stage.py``) reads the export and quantize folders and writes
the plugin-bearing graphs into a folder of its own. Importing this package imports nothing
heavy: the GPU machine runs ``kernels`` with only torch, triton and numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

from onerec_trt.layout import DEFAULT_RUN
from onerec_trt.reports import Report

__all__ = ["plugins", "PluginsOptions", "PluginsReport"]


@dataclass
class PluginsOptions:
    onnx: str | None = str(DEFAULT_RUN.onnx)  # the export stage's folder
    fp8: str | None = None  # the quantize stage's folder
    out: str = str(DEFAULT_RUN.plugins)
    check_users: int = 32  # synthetic histories both CPU graphs must agree on (0: skip)
    seed: int = 0
    force: bool = False


@dataclass
class PluginsReport(Report):
    """``plugins.json``: each plugin graph, what it came from, and the CPU agreement check."""

    options: dict
    graphs: dict  # plugin graph -> {"source": path, steps, vocab, beam_out, trie_bytes, ...}
    cpu_agreement: dict  # plugin CPU graph -> {"users", "identical_users", ...}
    seconds: float


def plugins(opts: PluginsOptions) -> PluginsReport:
    """Write the plugin-bearing graphs of ``opts.onnx`` and ``opts.fp8`` into ``opts.out``."""
    from onerec_trt.plugins.stage import run_plugins

    return run_plugins(opts)

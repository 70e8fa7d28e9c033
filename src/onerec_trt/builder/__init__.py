"""The build stage: TensorRT engines from the exported graphs.

Each ``--onnx`` graph becomes ``<name>.plan`` (a BF16 engine from ``reference.bf16.onnx``, an
FP8 engine from the Q/DQ graph ``fp8.onnx``; precision comes from the graph, the network is
strongly typed) and ``<name>.json`` (``engines.metadata.EngineMetadata``: what the plan needs
and came from). The lint runs first and stops the build on any error; TensorRT is needed only
after it (``trt_builder``). The package is not called ``build``: tools treat that name as build
output. This module imports nothing heavy: the implementation is ``builder/stage.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from onerec_trt.layout import BF16_GRAPH, DEFAULT_RUN, FP8_GRAPH
from onerec_trt.reports import Report

__all__ = ["build", "BuildOptions", "BuildReport"]

DEFAULT_GRAPHS = [str(DEFAULT_RUN.onnx / BF16_GRAPH), str(DEFAULT_RUN.fp8 / FP8_GRAPH)]
# MODULE[:FUNCTION] registering the plugins (the engines package imports and calls it)
DEFAULT_PLUGIN_MODULE = "onerec_trt.plugins.tensorrt_plugins:register_plugins"


@dataclass
class BuildOptions:
    onnx: list[str] = field(default_factory=lambda: list(DEFAULT_GRAPHS))
    out: str = str(DEFAULT_RUN.engines)
    min_batch: int = 1
    opt_batch: int = 32  # users per request the engine is tuned for
    max_batch: int = 256
    opt_level: int = 3  # TensorRT builder optimization level, 0-5
    workspace: int | None = None  # MiB; None: TensorRT's default (all device memory)
    timing_cache: str | None = None  # read if it exists, updated after the builds
    calibration: str | None = None  # default: calibration.json beside a Q/DQ graph
    plugin_module: list[str] = field(default_factory=lambda: [DEFAULT_PLUGIN_MODULE])
    plugin_library: list[str] = field(default_factory=list)
    print_commands: bool = False
    force: bool = False


@dataclass
class BuildReport(Report):
    """What the build did: ``ok`` False when the lint found errors (nothing built)."""

    ok: bool
    engines: list = field(default_factory=list)  # each engine's metadata (JSON)
    lint: list = field(default_factory=list)  # lint summaries, when the lint stopped it
    commands: str | None = None  # with print_commands: the trtexec / polygraphy commands


def build(opts: BuildOptions) -> BuildReport:
    """Lint, then build every graph (see the module docstring)."""
    from onerec_trt.builder.stage import run_build

    return run_build(opts)

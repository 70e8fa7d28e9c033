"""The bench stage: latency, throughput and peak memory of every backend that can run here,
measured side by side, plus (``--scaling``) how the cost grows with S, B, the catalogue and L.

Each backend runs in its own worker process (its peak memory is its own); the parent drives
them in alternating order (``stats.py``), so FP8/BF16 ratios hold on a noisy machine. Writes
``bench.json``, ``bench.md``, ``bench.png`` (and ``scaling.png``) and a manifest into ``--out``.
The GPU evidence without TensorRT is ``scripts/device_bench.py`` (``gpu_gemm.py``,
``gpu_e2e.py``).

This module imports nothing heavy at load time: the device script imports the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from onerec_trt.reports import Report

if TYPE_CHECKING:
    from onerec_trt.backends import Backend

__all__ = ["bench", "BenchOptions", "BenchReport"]


@dataclass
class BenchOptions:
    model: str = "default"
    # The stage folders; None: beside --onnx, else the run folder holding the model's graphs
    # (bench/sources.py: runs/<model>, ..., runs/default; none has: exported into <out>/onnx).
    onnx: str | None = None  # the export stage's folder
    fp8: str | None = None  # the quantize stage's folder
    plugins: str | None = None  # the plugins stage's folder
    engines: str | None = None  # the build stage's folder (TensorRT plans)
    out: str | None = None  # None: the run folder's bench/ (runs/<model>/bench for torch alone)
    backends: list[str] = field(default_factory=list)  # empty: every known backend
    peers: list[str] = field(default_factory=list)  # hf, optimum: what users run today (peers.py)
    users: int | None = None  # held-out test users to time (None: 200 with peers, else synthetic)
    rounds: int | None = None  # with users: passes over all of them per batch size (not --reps)
    batches: list[int] = field(default_factory=lambda: [1, 8, 64])  # users per request
    histories: str | None = None  # .npy [N, S] requests (default: synthetic random ids)
    beam: int | None = None  # None: the exported graphs' beam (20 without graphs)
    topk: int | None = None  # None: the exported graphs' top-K (min(10, beam) without)
    reps: int = 10  # timed calls per backend and batch size, alternating
    warmup: int = 2  # untimed calls per backend and batch size first
    threads: int = 1  # intra-op threads per backend (one backend computes at a time)
    device: str = "cpu"  # where the torch reference runs
    max_call_s: float = 120.0  # a backend slower than this per request stops there
    agreement_batch: int = 16  # users in the request whose items every backend must agree on
    scaling: bool = False
    scaling_axes: list[str] = field(default_factory=list)  # empty: history, beam, catalogue, levels
    scaling_users: int = 8
    scaling_reps: int = 3
    seed: int = 0
    force: bool = False
    progress: bool = True
    command: str | None = None  # the command line, recorded beside every number


@dataclass
class BenchReport(Report):
    """``bench.json``: each backend's latencies, throughput and memory, the FP8/BF16 pairs,
    what was skipped and why, and whether the backends agree on one request."""

    command: str
    machine: dict
    model: dict
    request: dict  # beam, top-K, history length, catalogue, where the histories came from
    options: dict
    schedule: str
    order_first_batch: list
    backends: dict  # name -> results, latencies, memory, info
    pairs: list  # FP8/BF16 pairs: ratios by batch size
    skipped: dict  # backend -> why it did not run
    agreement: dict
    load_average_end: list
    peers: dict | None = None  # peer -> same items as the project's graph?, speed-ups
    seconds: float = 0.0
    scaling: dict | None = None
    exported: dict | None = None  # no run folder held the graphs: bench exported them (options)


def bench(opts: BenchOptions, backends: dict[str, Backend] | None = None) -> BenchReport:
    """Time the backends ``opts.backends`` names (found in the stage folders; empty: every
    one that can run here), or exactly ``backends`` (backend objects by the name the report
    gives each, e.g. ``{"ort-fp8": OrtBackend("fp8/fp8.cpu.onnx", precision="fp8")}``)."""
    from onerec_trt.bench.stage import run_bench

    return run_bench(opts, given=backends)

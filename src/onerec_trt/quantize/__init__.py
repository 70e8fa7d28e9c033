"""The quantize stage: ModelOpt FP8 PTQ of the generation graph (see ``ptq.py`` for why the torch
path), calibrated on real users' training histories.

Writes ``fp8.onnx`` (standard FP8 Q/DQ on the GEMMs, bf16 elsewhere, fp32 beam logic: for
TensorRT), ``fp8.cpu.onnx`` (the same numerics for ONNX Runtime's CPU provider),
``calibration.json`` (amax and scale per quantizer; pass it back with ``--calibration`` to skip
calibration), ``fp8_policy.json`` (which GEMMs stay bf16: ``quantize/policy.py``) and
``quantize_report.json`` (``QuantizeReport``); with ``--search`` also ``search.md`` (the
candidates tried on validation users: ``quantize/search.py``), ``pareto.md`` and
``pareto.png`` (every candidate's FP8 share, overlap@10, Recall/NDCG change and predicted
speed-up: ``quantize/pareto.py``).

This module imports nothing heavy: the implementation is ``quantize/stage.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from onerec_trt.layout import DEFAULT_RUN, QUANTIZE_REPORT
from onerec_trt.reports import Report

__all__ = ["quantize", "QuantizeOptions", "QuantizeReport"]


@dataclass
class QuantizeOptions:
    model: str = "default"
    onnx: str = str(DEFAULT_RUN.onnx)  # the export stage's folder
    out: str = str(DEFAULT_RUN.fp8)
    calib_users: int = 512  # training histories calibrated on (seeded sample)
    calib_batch: int = 64  # users per calibration batch (x beam rows in the decoder)
    calib_method: str | None = None  # max | mse; None: the policy's (max without one)
    weight_scales: str | None = None  # per-tensor | per-channel; None: the policy's
    histories: str | None = None  # .npy [N, S] int histories instead of the dataset sample
    exclude: list[str] = field(default_factory=list)  # regexes over layer names
    default_exclusions: bool = True  # keep the output heads and context K/V projections bf16
    exclusions: str | None = None  # exclusions.json from the analysis stage
    calibration: str | None = None  # calibration.json to reuse (skips calibration)
    policy: str | None = None  # fp8_policy.json or quantize_report.json (quantize/policy.py)
    search: bool = False  # choose the policy on validation users (quantize/search.py)
    target_overlap: float = 0.95  # the search's overlap@10 target against bf16
    search_users: int = 1000  # validation users the search measures on (seeded sample)
    dataset: str | None = None
    data: str | None = None
    columns: str | None = None
    seed: int = 0
    qad: float = 0.0  # minutes of quantization-aware distillation before PTQ (0 = off; qad.py)
    force: bool = False


@dataclass
class QuantizeReport(Report):
    """``quantize_report.json``: which GEMMs are FP8, why the others are not, the calibration."""

    STAGE, FILE = "quantize", QUANTIZE_REPORT
    path: str
    format: str
    calibration: dict  # method, source, users, batch shape, split
    quantized_gemms: list[str]
    excluded_gemms: dict[str, str]  # layer -> reason
    unknown_exclusions: list[str]
    not_quantized_by_design: dict[str, str]
    graph: dict
    seconds_calibration: float
    seconds_total: float
    bytes: dict = field(default_factory=dict)  # graph file -> bytes with its weights
    policy: dict = field(default_factory=dict)  # the FP8 policy applied (Policy.to_json)
    fp8_flop_share: float | None = None  # FP8 share of a request's FLOPs under the policy
    flop_basis: str = ""  # what the share's denominator counts
    search: dict = field(default_factory=dict)  # quantize --search: trials and sensitivity
    # GPU -> bf16 time / FP8 time of a request under the policy: predicted (roofline), not
    # measured (quantize/speedup.py), with its basis and label
    predicted_speedup: dict = field(default_factory=dict)
    pareto: dict = field(default_factory=dict)  # --search: pareto.md / pareto.png and rows
    # --qad: the teacher's hash, the student folder and hash, minutes, steps, held-out KL
    qad: dict = field(default_factory=dict)


def quantize(opts: QuantizeOptions) -> QuantizeReport:
    """Calibrate and write the FP8 graphs of ``opts.model`` (see the module docstring)."""
    from onerec_trt.quantize.stage import run_quantize

    return run_quantize(opts)

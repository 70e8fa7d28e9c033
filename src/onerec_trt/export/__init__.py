"""The export stage: the whole request (context, L decode steps, beam search) as one ONNX graph.

Writes ``reference.bf16.onnx`` (bf16 weights and activations, fp32 beam logic: what a TensorRT
BF16 engine compiles), ``reference.cpu.onnx`` (the same numerics as fp32 compute with bf16
rounding casts, which ONNX Runtime's CPU provider runs), ``reference.fp32.onnx`` (the model in
fp32: the graph's meaning, checked against the torch reference exactly), plus ``export.json``
(``ExportReport``).

Inputs: ``history`` int64 [N, S], the model's item ids, left-padded with 0; N is dynamic, S is
fixed to the model's ``max_history`` (shorter histories are padded, longer ones keep their last
S items). Outputs: ``items`` int64 [N, K] (-1 where fewer than K items exist), ``scores``
float32 [N, K], ``codes`` int64 [N, K, L] (-1 where dead).

This module imports nothing heavy: the implementation is ``export/stage.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from onerec_trt.errors import user_error
from onerec_trt.layout import DEFAULT_RUN, EXPORT_JSON, MANIFEST
from onerec_trt.reports import Report, read_stage

__all__ = ["export", "ExportOptions", "ExportReport", "find_report", "INPUTS", "OUTPUTS",
           "OPSET"]

INPUTS, OUTPUTS = ["history"], ["items", "scores", "codes"]
OPSET = 19
TOPK_LIMIT = 3840  # TensorRT's TopK: K <= 3840


@dataclass
class ExportOptions:
    model: str = "default"
    out: str = str(DEFAULT_RUN.onnx)
    beam: int = 20  # beam width B
    topk: int = 10  # results per user K (<= B)
    step: str = "csr"  # the beam step in the graph (model.generate.STEPS): csr or dense
    force: bool = False


@dataclass
class ExportReport(Report):
    """``export.json``: what the graphs take and return, and what made them."""

    STAGE, FILE = "export", EXPORT_JSON
    options: dict
    model: str
    model_sha256: str | None
    history_length: int
    levels: int
    codebook_sizes: list[int]
    num_items: int
    opset: int
    inputs: dict  # name -> ["N", dim, ..., dtype]
    outputs: dict
    nodes: dict = field(default_factory=dict)  # graph file -> node count
    bytes: dict = field(default_factory=dict)  # graph file -> bytes with its weights
    seconds: float = 0.0

    def check(self, what: str) -> None:
        """beam and topk positive integers, step (where recorded) a beam step's name: every
        reader of ``export.json`` (quantize, verify, runners, triton, build) relies on them."""
        from onerec_trt.model.generate import STEPS

        options = self.options if isinstance(self.options, dict) else {}
        counts = [options.get(k) for k in ("beam", "topk")]
        positive = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in counts)
        if not (positive and options.get("step", "dense") in STEPS):
            raise user_error(f"{what} does not record the export's options (beam, topk, step)",
                             "export again: onerec-trt export --force")

    @property
    def beam(self) -> int:
        return int(self.options["beam"])

    @property
    def topk(self) -> int:
        return int(self.options["topk"])

    @property
    def step(self) -> str:
        return self.options.get("step", "dense")  # graphs from before the csr step: dense


def export(opts: ExportOptions) -> ExportReport:
    """Write the graphs of ``opts.model`` into ``opts.out`` (see the module docstring)."""
    from onerec_trt.export.stage import run_export

    return run_export(opts)


def find_report(graph: str | Path) -> ExportReport | None:
    """The ``export.json`` describing a graph: beside it (the export folder), else the export
    folder a later stage's manifest names (quantize, plugins: option ``onnx``), else the run
    layout's sibling ``onnx`` folder. None when there is none."""
    folder = Path(graph).parent
    candidates = [folder / EXPORT_JSON]
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        named = manifest.get("options", {}).get("onnx")
        if named:
            candidates.append(Path(named) / EXPORT_JSON)
    except (OSError, json.JSONDecodeError, AttributeError):
        pass
    candidates.append(folder.parent / "onnx" / EXPORT_JSON)
    for path in candidates:
        if path.is_file():  # a broken one is a user error, never silently skipped
            return read_stage(path.parent, ExportReport)
    return None

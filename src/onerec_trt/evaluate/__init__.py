"""The evaluate stage: Recall/NDCG@5/10 of beam search beside simple baselines, same split.

This module imports nothing heavy: the implementation is ``evaluate/stage.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from onerec_trt.reports import Report

__all__ = ["evaluate", "EvalOptions", "EvalReport", "format_report"]

METRICS = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")


@dataclass
class EvalOptions:
    model: str = "default"
    dataset: str | None = None  # default: the dataset the model was trained on
    data: str | None = None
    columns: str | None = None
    split: str = "test"
    users: int | None = None  # None = every user
    beam: int = 20
    baselines: bool = False
    seed: int = 0


@dataclass
class EvalReport(Report):
    """``eval.json``: the model's metrics (and the baselines') on one split."""

    JSON_NAMES = {"recall_at_5": "recall@5", "recall_at_10": "recall@10",
                  "ndcg_at_5": "ndcg@5", "ndcg_at_10": "ndcg@10",
                  "by_target_occurrences": "recall@10_by_target_occurrences"}

    recall_at_5: float
    recall_at_10: float
    ndcg_at_5: float
    ndcg_at_10: float
    users: int
    dataset: str
    split: str
    backend: str
    beam: int
    model: str
    seconds: float
    users_per_second: float | None
    dataset_stats: dict
    baselines: dict = field(default_factory=dict)  # name -> {"recall@10": ..., ...}
    by_target_occurrences: list = field(default_factory=list)
    untrained: bool = False  # random weights from 'onerec-trt init': numbers mean nothing

    def metric(self, name: str) -> float:
        """A metric by its JSON name ("recall@10")."""
        return self.to_json()[name]


def evaluate(opts: EvalOptions, progress: bool = True) -> EvalReport:
    """Score a model (beam search, torch on the CPU) and, optionally, the baselines."""
    from onerec_trt.evaluate.stage import run_evaluate

    return run_evaluate(opts, progress)


def format_report(report: EvalReport) -> str:
    from onerec_trt.evaluate.stage import format_report as fmt

    return fmt(report)

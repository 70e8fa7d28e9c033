"""The verify stage: the accuracy gate. Polygraphy runs a reference and a candidate on real
held-out users and compares ``scores`` tensors; recommendation-level agreement and Recall/NDCG
deltas decide the gates.

Exit codes (CLI): 0 pass, 1 a gate failed, 2 a usage error. The implementation is
``verify/stage.py``; this module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from onerec_trt.layout import CPU_GRAPH, DEFAULT_RUN, FP8_CPU_GRAPH, VERIFY_JSON
from onerec_trt.reports import Report

if TYPE_CHECKING:
    from onerec_trt.backends import Backend

__all__ = ["verify", "VerifyOptions", "VerifyReport", "Gates"]


@dataclass
class Gates:
    """Defaults a production team would accept: FP8 keeps >= 94% of the top 10, and is not shown to
    lose more than 1% (relative) of Recall@10 or NDCG@10. The overlap gate is what a policy
    chosen by ``quantize --search`` (target 0.95 on validation users) holds on test users (the
    shipped model: 0.950 on all 6,040), less three standard errors of a 1,000-user sample (about
    0.003 each), so an honest graph does not fail it by chance. The Recall/NDCG gates are
    non-inferiority tests with these margins (``verify/noninferiority.py``): pass when the
    ``confidence`` CI's lower bound is >= -margin, fail when the whole CI is below it, else
    inconclusive (reported, never a failure alone); gains never fail."""

    min_overlap_at_10: float = 0.94
    max_recall_drop: float = 0.01
    max_ndcg_drop: float = 0.01
    confidence: float = 0.95  # two-sided CI level: each one-sided decision at 2.5%


@dataclass
class VerifyOptions:
    reference: str = str(DEFAULT_RUN.onnx / CPU_GRAPH)
    candidate: str = str(DEFAULT_RUN.fp8 / FP8_CPU_GRAPH)
    model: str = "default"
    dataset: str | None = None
    data: str | None = None
    columns: str | None = None
    histories: str | None = None  # .npy [N, S] requests instead of held-out users (no targets)
    split: str = "test"
    users: int = 1000  # held-out users (seeded sample)
    batch: int = 250
    out: str = str(DEFAULT_RUN.verify)
    # scores: FP8 E4M3 keeps 3 mantissa bits (relative step 2^-3); bf16 logits add 2^-8. A
    # log-probability sum of ~-8 moves by a few tenths under FP8 GEMMs: see docs/verify.md.
    # checked on the 99th percentile of |difference| (Polygraphy's "quantile" error statistic):
    # where FP8 reorders items, the k-th score of each list belongs to different items, so the
    # extreme elementwise difference measures reordering, not precision
    scores_atol: float = 0.5
    scores_rtol: float = 0.1
    scores_quantile: float = 0.99
    gates: Gates = field(default_factory=Gates)
    bootstrap: int = 1000
    seed: int = 0
    force: bool = False


@dataclass
class VerifyReport(Report):
    """``verify.json``: the verdict, each gate, the agreement and metric deltas."""

    JSON_NAMES = {"passed": "pass"}
    STAGE, FILE = "verify", VERIFY_JSON

    passed: bool  # no gate failed (an inconclusive gate is not a failure)
    gates: dict  # gate -> {"value", "threshold", "pass", "decision", "reason"[, "ci",
    # "users_needed"]}; "decision": "pass" | "fail" | "inconclusive"
    metrics: dict  # overlap@k, jaccard@k, exact_match@k, recall@k/ndcg@k deltas, scores error
    users: int
    dataset: str
    split: str
    backends: dict  # role -> description
    seconds: dict
    options: dict
    # the candidate's FP8 policy: predicted (roofline) speed-up over bf16, from its quantize
    # run's quantize_report.json ({} where it has none; verify/speedup.py)
    predicted_speedup: dict = field(default_factory=dict)
    score_cut: dict = field(default_factory=dict)  # error at the top-10 cut vs the gap (cut.py)

    @property
    def overlap_at_10(self) -> float:
        return self.metrics["overlap@10"]

    @property
    def measured_metrics(self) -> bool:
        """Recall/NDCG were measured (held-out users with targets, not ``--histories``)."""
        return "recall@10" in self.metrics

    @property
    def inconclusive(self) -> list[str]:
        """The gates whose sample could not decide (more users would)."""
        return [name for name, g in self.gates.items() if g.get("decision") == "inconclusive"]

    @property
    def verdict(self) -> str:
        """PASS or FAIL, naming the inconclusive gates: "PASS (recall@10 inconclusive)"."""
        verdict = "PASS" if self.passed else "FAIL"
        names = [name.removesuffix("_relative_change") for name in self.inconclusive]
        return f"{verdict} ({', '.join(names)} inconclusive)" if names else verdict

    def relative_change(self, metric: str) -> float | None:
        """A metric's relative change, candidate against reference ("recall@10"); None where
        it was not measured."""
        return self.metrics[metric]["relative_diff"] if metric in self.metrics else None


def verify(opts: VerifyOptions, reference: Backend | None = None,
           candidate: Backend | None = None) -> VerifyReport:
    """Compare ``candidate`` with ``reference`` (backend objects, ``onerec_trt.backends``; see
    the module docstring). ``opts.reference`` / ``opts.candidate`` become the backends' names
    (the report and manifest record them). The strings of a ``VerifyOptions`` are made into
    objects only by ``onerec_trt.commands.backends.verify_backends(opts)``, what the CLI
    runs: ``verify(opts, *verify_backends(opts))``."""
    from dataclasses import replace

    from onerec_trt.errors import user_error
    from onerec_trt.verify.stage import run_verify

    if reference is None or candidate is None:
        raise user_error("verify() takes the reference and candidate as backend objects",
                         "verify(opts, OrtBackend(...), OrtBackend(...)), or from the strings "
                         "in opts: verify(opts, *onerec_trt.commands.backends.verify_backends("
                         "opts))")
    opts = replace(opts, reference=reference.name, candidate=candidate.name)
    return run_verify(opts, reference, candidate)

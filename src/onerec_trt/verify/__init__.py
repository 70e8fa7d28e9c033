"""The verify stage: the accuracy gate. Polygraphy runs a reference and a candidate on real
held-out users and compares ``scores`` tensors; recommendation-level agreement and Recall/NDCG
deltas decide the gates.

Exit codes (CLI): 0 pass, 1 a gate failed, 2 a usage error.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from onerec_trt.artifacts import staged_folder, write_json, write_manifest, write_text
from onerec_trt.data import pad_histories
from onerec_trt.errors import user_error
from onerec_trt.evaluate import sample_users
from onerec_trt.model.folder import load_model, model_hash
from onerec_trt.verify.agreement import agreement, metric_deltas
from onerec_trt.verify.report import format_markdown
from onerec_trt.verify.runners import make_runner

__all__ = ["verify", "VerifyOptions", "Gates"]


@dataclass
class Gates:
    """Defaults a production team would accept: FP8 keeps >= 90% of the top 10 and loses at
    most 1% (relative) of Recall@10 and NDCG@10; gains are never a failure."""

    min_overlap_at_10: float = 0.9
    max_recall_drop: float = 0.01
    max_ndcg_drop: float = 0.01


@dataclass
class VerifyOptions:
    reference: str = "runs/default/onnx/reference.cpu.onnx"
    candidate: str = "runs/default/fp8/fp8.cpu.onnx"
    model: str = "default"
    dataset: str | None = None
    data: str | None = None
    columns: str | None = None
    split: str = "test"
    users: int = 1000
    batch: int = 250
    out: str = "runs/default/verify"
    # scores: FP8 E4M3 keeps 3 mantissa bits (relative step 2^-3); bf16 logits add 2^-8. A
    # log-probability sum of ~-8 moves by a few tenths under FP8 GEMMs: see docs/verify.md.
    # checked on the 99th percentile of |difference| (Polygraphy's "quantile" error statistic):
    # where FP8 reorders items, the k-th score of each list belongs to different items, so the
    # extreme elementwise difference measures reordering, not precision
    scores_atol: float = 0.5
    scores_rtol: float = 0.1
    scores_quantile: float = 0.99
    gates: Gates = None  # type: ignore[assignment]
    bootstrap: int = 1000
    seed: int = 0
    force: bool = False

    def __post_init__(self):
        if self.gates is None:
            self.gates = Gates()


def _histories(opts: VerifyOptions, bundle) -> tuple[np.ndarray, np.ndarray, dict]:
    data = bundle.load_data(opts.dataset, opts.data, opts.columns)
    split = data.split()
    if opts.users is not None and opts.users <= 0:
        raise user_error(f"--users must be positive, got {opts.users}")
    users = sample_users(split.num_users, opts.users, opts.seed)
    if len(users) == 0:
        raise user_error("the user sample is empty")
    hist = split.histories(opts.split)
    return (pad_histories([hist[i] for i in users], bundle.config.max_history),
            split.targets(opts.split)[users], {"dataset": data.name, "split": opts.split})


def verify(opts: VerifyOptions, log=print) -> dict:
    from polygraphy.comparator import Comparator, CompareFunc
    from polygraphy.json import save_json
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.WARNING
    t0 = time.perf_counter()
    if Path(opts.out).exists() and not opts.force:
        raise user_error(f"output folder already exists: {opts.out}", "pass --force to replace it")
    bundle = load_model(opts.model)
    reference = make_runner(opts.reference, "reference", model_hash(opts.model), opts.model)
    candidate = make_runner(opts.candidate, "candidate", model_hash(opts.model), opts.model,
                            like=reference)
    histories, targets, where = _histories(opts, bundle)
    loader = [{"history": histories[i:i + opts.batch]}
              for i in range(0, len(histories), opts.batch)]
    t_run = time.perf_counter()
    results = Comparator.run([reference.runner, candidate.runner], data_loader=loader)
    run_seconds = time.perf_counter() - t_run
    only_scores = lambda name, index, result: ["scores"] if name == "scores" else []  # noqa: E731
    scores_ok = bool(Comparator.compare_accuracy(results, compare_func=CompareFunc.simple(
        atol={"scores": opts.scores_atol}, rtol={"scores": opts.scores_rtol},
        check_error_stat={"scores": "quantile"}, error_quantile={"scores": opts.scores_quantile},
        infinities_compare_equal=True, find_output_func=only_scores)))
    (_, ref_iters), (_, cand_iters) = results
    ref_items = np.concatenate([np.asarray(it["items"]) for it in ref_iters])
    cand_items = np.concatenate([np.asarray(it["items"]) for it in cand_iters])
    ref_scores = np.concatenate([np.asarray(it["scores"]) for it in ref_iters])
    cand_scores = np.concatenate([np.asarray(it["scores"]) for it in cand_iters])
    finite = np.isfinite(ref_scores) & np.isfinite(cand_scores)
    abs_err = np.abs(ref_scores - cand_scores)[finite]
    metrics = {**agreement(ref_items, cand_items, 10), **agreement(ref_items, cand_items, 5),
               **metric_deltas(ref_items, cand_items, targets, 10, opts.bootstrap, opts.seed),
               **metric_deltas(ref_items, cand_items, targets, 5, opts.bootstrap, opts.seed),
               "scores_abs_error": {"median": float(np.median(abs_err)),
                                    "p99": float(np.percentile(abs_err, 99)),
                                    "max": float(abs_err.max())}}
    gates = _gates(opts.gates, metrics, scores_ok, opts)
    report = {
        "pass": all(g["pass"] for g in gates.values()),
        "gates": gates,
        "metrics": metrics,
        "users": int(len(targets)),
        **where,
        "backends": {"reference": reference.describe(), "candidate": candidate.describe()},
        "seconds": {"inference": run_seconds, "total": time.perf_counter() - t0},
        "options": asdict(opts),
    }
    with staged_folder(opts.out, force=opts.force) as tmp:
        results.save(str(tmp / "outputs.json"))
        save_json(loader, str(tmp / "inputs.json"), "verify inputs")
        write_json(tmp / "verify.json", report)
        write_text(tmp / "verify.md", format_markdown(report))
        write_manifest(tmp, "verify", asdict(opts), inputs={"model": model_hash(opts.model) or ""})
    log(format_markdown(report, short=True))
    return report


def _gates(g: Gates, m: dict, scores_ok: bool, opts: VerifyOptions) -> dict:
    recall, ndcg = m["recall@10"]["relative_diff"], m["ndcg@10"]["relative_diff"]
    return {
        "overlap@10": {"value": m["overlap@10"], "threshold": f">= {g.min_overlap_at_10}",
                       "pass": m["overlap@10"] >= g.min_overlap_at_10},
        "recall@10_relative_change": {"value": recall, "threshold": f">= -{g.max_recall_drop}",
                                      "pass": recall >= -g.max_recall_drop},
        "ndcg@10_relative_change": {"value": ndcg, "threshold": f">= -{g.max_ndcg_drop}",
                                    "pass": ndcg >= -g.max_ndcg_drop},
        "scores_tensor": {"value": m["scores_abs_error"]["p99"],
                          "threshold": f"p{opts.scores_quantile * 100:g} |diff| <= "
                                       f"{opts.scores_atol} or rel <= {opts.scores_rtol} "
                                       "(Polygraphy CompareFunc.simple)",
                          "pass": scores_ok},
    }

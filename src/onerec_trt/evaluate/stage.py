"""``evaluate()``'s body: beam search on held-out users, the baselines on the same split."""

from __future__ import annotations

import logging
import time

import torch

from onerec_trt.data.samplers import sample_users
from onerec_trt.errors import user_error
from onerec_trt.evaluate import METRICS, EvalOptions, EvalReport
from onerec_trt.evaluate.baselines import BASELINES, recommend_baselines
from onerec_trt.evaluate.popularity import format_popularity_table, recall_by_target_popularity
from onerec_trt.metrics import recall_ndcg
from onerec_trt.model.checkpoint import load_model
from onerec_trt.model.evaluation import evaluate_model
from onerec_trt.tables import format_table

log = logging.getLogger(__name__)


def run_evaluate(opts: EvalOptions, progress: bool = True) -> EvalReport:
    if opts.split not in ("test", "valid"):
        raise user_error(f"unknown split {opts.split!r}", "expected 'test' or 'valid'")
    if opts.beam < 10:
        raise user_error(f"--beam must be at least 10, got {opts.beam}",
                         "Recall@10 needs 10 results")
    bundle = load_model(opts.model)
    data = bundle.load_data(opts.dataset, opts.data, opts.columns)
    dataset = data.name
    log.info(data.describe())
    split = data.split()
    users = sample_users(split.num_users, opts.users, opts.seed)
    histories = split.histories(opts.split)
    targets = split.targets(opts.split)[users]
    t0 = time.perf_counter()
    metrics, ranked = evaluate_model(bundle.model, [histories[i] for i in users], targets,
                                     opts.beam, progress=progress)
    seconds = time.perf_counter() - t0
    rankings = {"model": ranked}
    baselines = {}
    if opts.baselines:
        rankings.update(recommend_baselines(split, opts.split, data.num_items, users=users))
        baselines = {name: recall_ndcg(rankings[name], targets) for name in BASELINES}
    return EvalReport.from_json({
        **metrics, "users": int(len(users)), "dataset": dataset, "split": opts.split,
        "backend": f"torch {torch.__version__} cpu fp32", "beam": opts.beam,
        "model": str(bundle.path), "seconds": seconds,
        "users_per_second": len(users) / seconds if seconds else None,
        "dataset_stats": data.stats, "baselines": baselines,
        "recall@10_by_target_occurrences": recall_by_target_popularity(
            split.train, data.num_items, targets, rankings), "untrained": bundle.untrained})


def format_report(report: EvalReport) -> str:
    rows = [["model (" + report.backend + ")", *(report.metric(m) for m in METRICS)]]
    for name in BASELINES:
        if name in report.baselines:
            rows.append([name, *(report.baselines[name][m] for m in METRICS)])
    title = (f"{report.dataset} {report.split} split, {report.users:,} users, "
             f"beam {report.beam}, whole catalogue, seen items kept")
    text = title + "\n" + format_table(["", *METRICS], rows)
    if report.untrained:
        text += ("\nnote: the model is untrained ('onerec-trt init': random weights); its "
                 "numbers measure nothing learned")
    if report.by_target_occurrences:
        text += "\n\n" + format_popularity_table(report.by_target_occurrences)
    return text

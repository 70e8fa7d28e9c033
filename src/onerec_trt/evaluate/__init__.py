"""The evaluation stage: Recall/NDCG@5/10 of beam search beside simple baselines, same split."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from onerec_trt.errors import user_error
from onerec_trt.evaluate.baselines import BASELINES, recommend_baselines
from onerec_trt.evaluate.popularity import format_popularity_table, recall_by_target_popularity
from onerec_trt.evaluate.table import format_table
from onerec_trt.metrics import recall_ndcg
from onerec_trt.model.folder import load_model
from onerec_trt.model.train import evaluate_model

__all__ = ["evaluate", "EvalOptions", "sample_users", "format_report"]

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


def sample_users(count: int, sample: int | None, seed: int = 0) -> np.ndarray:
    """A fixed, sorted random sample of user indices (all users when ``sample`` is None)."""
    if sample is None or sample >= count:
        return np.arange(count)
    if sample <= 0:
        raise user_error(f"--users must be positive, got {sample}")
    return np.sort(np.random.default_rng(seed).choice(count, sample, replace=False))


def evaluate(opts: EvalOptions, progress: bool = True, log=print) -> dict:
    """Score a model (beam search, torch on the CPU) and, optionally, the baselines."""
    if opts.split not in ("test", "valid"):
        raise user_error(f"unknown split {opts.split!r}", "expected 'test' or 'valid'")
    if opts.beam < 10:
        raise user_error(f"--beam must be at least 10, got {opts.beam}",
                         "Recall@10 needs 10 results")
    bundle = load_model(opts.model)
    data = bundle.load_data(opts.dataset, opts.data, opts.columns)
    dataset = data.name
    log(data.describe())
    split = data.split()
    users = sample_users(split.num_users, opts.users, opts.seed)
    histories = split.histories(opts.split)
    targets = split.targets(opts.split)[users]
    t0 = time.perf_counter()
    metrics, ranked = evaluate_model(bundle.model, [histories[i] for i in users], targets,
                                     opts.beam, progress=progress)
    seconds = time.perf_counter() - t0
    report = {
        **metrics,
        "users": int(len(users)),
        "dataset": dataset,
        "split": opts.split,
        "backend": f"torch {torch.__version__} cpu fp32",
        "beam": opts.beam,
        "model": str(bundle.path),
        "seconds": seconds,
        "users_per_second": len(users) / seconds if seconds else None,
        "dataset_stats": data.stats,
    }
    rankings = {"model": ranked}
    if opts.baselines:
        rankings.update(recommend_baselines(split, opts.split, data.num_items, users=users))
        report["baselines"] = {name: recall_ndcg(rankings[name], targets) for name in BASELINES}
    report["recall@10_by_target_occurrences"] = recall_by_target_popularity(
        split.train, data.num_items, targets, rankings)
    return report


def format_report(report: dict) -> str:
    rows = [["model (" + report["backend"] + ")", *(report[m] for m in METRICS)]]
    for name in BASELINES:
        if name in report.get("baselines", {}):
            rows.append([name, *(report["baselines"][name][m] for m in METRICS)])
    title = (f"{report['dataset']} {report['split']} split, {report['users']:,} users, "
             f"beam {report['beam']}, whole catalogue, seen items kept")
    text = title + "\n" + format_table(["", *METRICS], rows)
    if report.get("recall@10_by_target_occurrences"):
        text += "\n\n" + format_popularity_table(report["recall@10_by_target_occurrences"])
    return text

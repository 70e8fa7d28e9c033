"""``verify()``'s body: run both backends through Polygraphy, measure agreement, judge."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from onerec_trt.artifacts import staged_folder, write_manifest, write_text
from onerec_trt.data.histories import load_histories
from onerec_trt.data.samplers import held_out
from onerec_trt.engines.runners import make_runner
from onerec_trt.errors import user_error
from onerec_trt.layout import VERIFY_JSON, VERIFY_MD
from onerec_trt.model.checkpoint import load_model, model_hash
from onerec_trt.model.generate import users_per_call
from onerec_trt.verify import Gates, VerifyOptions, VerifyReport
from onerec_trt.verify.agreement import agreement, metric_deltas
from onerec_trt.verify.report import format_markdown


def _histories(opts: VerifyOptions, bundle) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Held-out users of the dataset (with their targets), or the ``--histories`` file's
    requests (no targets: agreement only)."""
    if opts.histories:
        if opts.dataset or opts.data:
            raise user_error("--histories and --dataset/--data contradict each other",
                             "requests come from one of them")
        histories = load_histories(opts.histories, bundle.config.max_history,
                                   bundle.config.num_items)
        return histories[:opts.users], None, {"dataset": f"--histories {opts.histories}",
                                              "split": "-"}
    data = bundle.load_data(opts.dataset, opts.data, opts.columns)
    histories, targets = held_out(data.split(), opts.split, opts.users,
                                  bundle.config.max_history, opts.seed)
    return histories, targets, {"dataset": data.name, "split": opts.split}


def run_verify(opts: VerifyOptions, log=print) -> VerifyReport:
    from polygraphy.comparator import Comparator, CompareFunc
    from polygraphy.json import save_json
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.WARNING
    t0 = time.perf_counter()
    if Path(opts.out).exists() and not opts.force:
        raise user_error(f"output folder already exists: {opts.out}", "pass --force to replace it")
    bundle = load_model(opts.model)
    sha = model_hash(opts.model)
    reference = make_runner(opts.reference, "reference", opts.model, sha)
    candidate = make_runner(opts.candidate, "candidate", opts.model, sha, like=reference)
    histories, targets, where = _histories(opts, bundle)
    batch = users_per_call(reference.export.beam if reference.export else 1,
                           bundle.config.codebook_sizes, opts.batch)
    if batch < opts.batch:
        log(f"note: {batch} users per call (beam x codebook tensors stay under 256 MiB)")
    loader = [{"history": histories[i:i + batch]} for i in range(0, len(histories), batch)]
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
               "scores_abs_error": {"median": float(np.median(abs_err)) if abs_err.size else 0.0,
                                    "p99": float(np.percentile(abs_err, 99))
                                    if abs_err.size else 0.0,
                                    "max": float(abs_err.max()) if abs_err.size else 0.0}}
    if targets is not None:
        for k in (10, 5):
            metrics |= metric_deltas(ref_items, cand_items, targets, k, opts.bootstrap, opts.seed)
    gates = _gates(opts.gates, metrics, scores_ok, opts)
    report = VerifyReport(
        passed=all(g["pass"] for g in gates.values()), gates=gates, metrics=metrics,
        users=int(len(histories)), dataset=where["dataset"], split=where["split"],
        backends={"reference": reference.describe(), "candidate": candidate.describe()},
        seconds={"inference": run_seconds, "total": time.perf_counter() - t0},
        options=asdict(opts))
    with staged_folder(opts.out, force=opts.force) as tmp:
        results.save(str(tmp / "outputs.json"))
        save_json(loader, str(tmp / "inputs.json"), "verify inputs")
        report.save(tmp / VERIFY_JSON)
        write_text(tmp / VERIFY_MD, format_markdown(report))
        write_manifest(tmp, "verify", asdict(opts), inputs={"model": model_hash(opts.model) or ""})
    log(format_markdown(report, short=True))
    return report


def _gates(g: Gates, m: dict, scores_ok: bool, opts: VerifyOptions) -> dict:
    gates = {"overlap@10": {"value": m["overlap@10"], "threshold": f">= {g.min_overlap_at_10}",
                            "pass": m["overlap@10"] >= g.min_overlap_at_10}}
    if "recall@10" in m:  # with targets (a dataset's held-out users)
        recall, ndcg = m["recall@10"]["relative_diff"], m["ndcg@10"]["relative_diff"]
        gates["recall@10_relative_change"] = {"value": recall,
                                              "threshold": f">= -{g.max_recall_drop}",
                                              "pass": recall >= -g.max_recall_drop}
        gates["ndcg@10_relative_change"] = {"value": ndcg, "threshold": f">= -{g.max_ndcg_drop}",
                                            "pass": ndcg >= -g.max_ndcg_drop}
    return gates | {
        "scores_tensor": {"value": m["scores_abs_error"]["p99"],
                          "threshold": f"p{opts.scores_quantile * 100:g} |diff| <= "
                                       f"{opts.scores_atol} or rel <= {opts.scores_rtol} "
                                       "(Polygraphy CompareFunc.simple)",
                          "pass": scores_ok},
    }

"""``verify()``'s body: run both backends through Polygraphy, measure agreement, judge."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

import numpy as np

from onerec_trt.artifacts import write_text
from onerec_trt.backends import Backend
from onerec_trt.data.samplers import held_out
from onerec_trt.errors import user_error
from onerec_trt.layout import VERIFY_JSON, VERIFY_MD
from onerec_trt.model.checkpoint import load_model, model_hash
from onerec_trt.model.generate import users_per_call
from onerec_trt.progress import progress_bar
from onerec_trt.stage_runner import StagedRun, check_stage_out, run_stage
from onerec_trt.verify import Gates, VerifyOptions, VerifyReport
from onerec_trt.verify.agreement import agreement, metric_deltas
from onerec_trt.verify.cut import cut_vs_gap
from onerec_trt.verify.noninferiority import FAIL, PASS, RelativeChange, decide
from onerec_trt.verify.report import format_markdown
from onerec_trt.verify.script import SCRIPT, check_script
from onerec_trt.verify.speedup import candidate_speedup
from onerec_trt.verify.ties import candidate_tie_order

log = logging.getLogger(__name__)

MIN_TOPK = 10  # the gates compare each user's top 10


def _histories(opts: VerifyOptions, bundle) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Held-out users of the dataset (with their targets), or the ``--histories`` file's
    requests (no targets: agreement only)."""
    if opts.histories:
        if opts.dataset or opts.data:
            raise user_error("--histories and --dataset/--data contradict each other",
                             "requests come from one of them")
        histories = bundle.histories_file(opts.histories)
        return histories[:opts.users], None, {"dataset": f"--histories {opts.histories}",
                                              "split": "-"}
    data = bundle.load_data(opts.dataset, opts.data, opts.columns)
    histories, targets = held_out(data.split(), opts.split, opts.users,
                                  bundle.config.max_history, opts.seed)
    return histories, targets, {"dataset": data.name, "split": opts.split}


def run_verify(opts: VerifyOptions, reference: Backend, candidate: Backend) -> VerifyReport:
    from polygraphy.comparator import Comparator, SimpleCompareFunc
    from polygraphy.json import save_json
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.WARNING
    t0 = time.perf_counter()
    check_stage_out(opts)  # before any work; the runner checks again when it writes
    if not 0 < opts.gates.confidence < 1:
        raise user_error(f"--confidence {opts.gates.confidence} is not a level between 0 and 1",
                         "e.g. 0.95: a two-sided 95% CI")
    bundle = load_model(opts.model)
    for role, backend in (("reference", reference), ("candidate", candidate)):
        backend.check_model(model_hash(opts.model), f"--{role} {backend.name}")
    _fill_request(candidate, reference)
    for role, backend in (("reference", reference), ("candidate", candidate)):
        _check_history_length(backend, role, bundle.config.max_history)
    if reference.export and candidate.export and reference.export.topk != candidate.export.topk:
        raise user_error(f"the candidate returns {candidate.export.topk} items per user, the "
                         f"reference {reference.export.topk}",
                         "compare graphs exported with the same --topk")
    for role, backend in (("reference", reference), ("candidate", candidate)):
        if backend.export is not None:
            _check_topk(backend.export.topk, f"--{role} {backend.name}")
    histories, targets, where = _histories(opts, bundle)
    batch = users_per_call(reference.export.beam if reference.export else 1,
                           bundle.config.codebook_sizes, opts.batch)
    if batch < opts.batch:
        log.info(f"note: {batch} users per call (beam x codebook tensors stay under 256 MiB)")
    loader = [{"history": histories[i:i + batch]} for i in range(0, len(histories), batch)]
    t_run = time.perf_counter()
    with progress_bar(desc="verify: reference, then candidate", total=2 * len(histories),
                      unit="user") as bar:
        runners = [_counting(backend.runner(role), bar)
                   for role, backend in (("reference", reference), ("candidate", candidate))]
        results = Comparator.run(runners, data_loader=loader)
    run_seconds = time.perf_counter() - t_run
    only_scores = lambda name, index, result: ["scores"] if name == "scores" else []  # noqa: E731
    scores_ok = bool(Comparator.compare_accuracy(results, compare_func=SimpleCompareFunc(
        atol={"scores": opts.scores_atol}, rtol={"scores": opts.scores_rtol},
        check_error_stat={"scores": "quantile"}, error_quantile={"scores": opts.scores_quantile},
        infinities_compare_equal=True, find_output_func=only_scores)))
    (_, ref_iters), (_, cand_iters) = results
    ref_items, ref_scores = _outputs(ref_iters)
    cand_items, cand_scores = _outputs(cand_iters)
    _check_same_shapes(ref_items, cand_items, ref_scores, cand_scores, len(histories))
    finite = np.isfinite(ref_scores) & np.isfinite(cand_scores)
    abs_err = np.abs(ref_scores - cand_scores)[finite]
    metrics = {**agreement(ref_items, cand_items, 10), **agreement(ref_items, cand_items, 5),
               "scores_abs_error": {"median": float(np.median(abs_err)) if abs_err.size else 0.0,
                                    "p99": float(np.percentile(abs_err, 99))
                                    if abs_err.size else 0.0,
                                    "max": float(abs_err.max()) if abs_err.size else 0.0},
               "nan_score_users": {"reference": _nan_users(ref_scores),
                                   "candidate": _nan_users(cand_scores)}}
    if targets is not None:
        for k in (10, 5):
            metrics |= metric_deltas(ref_items, cand_items, targets, k, opts.bootstrap, opts.seed,
                                     opts.gates.confidence)
    gates = _gates(opts.gates, metrics, scores_ok, opts, len(histories))
    ties = candidate_tie_order(candidate)  # T4: a standard-op TensorRT engine has no tie order
    if not ties["exact"]:
        gates["overlap@10"]["reason"] += f" ({ties['why']})"
    report = VerifyReport(
        passed=all(g["pass"] for g in gates.values()), gates=gates, metrics=metrics,
        users=int(len(histories)), dataset=where["dataset"], split=where["split"],
        backends={"reference": reference.describe("reference"),
                  "candidate": {**candidate.describe("candidate"), "tie_order": ties}},
        seconds={"inference": run_seconds, "total": time.perf_counter() - t0},
        options=asdict(opts), predicted_speedup=candidate_speedup(candidate),
        score_cut=cut_vs_gap(ref_scores, cand_scores, 10))

    def write(run: StagedRun) -> VerifyReport:
        tmp = run.folder
        results.save(str(tmp / "outputs.json"))
        save_json(loader, str(tmp / "inputs.json"), "verify inputs")
        write_text(tmp / VERIFY_MD, format_markdown(report))
        write_text(tmp / SCRIPT, check_script(reference, candidate, opts.scores_atol,
                                              opts.scores_rtol, opts.scores_quantile,
                                              opts.gates.min_overlap_at_10))
        run.inputs["model"] = model_hash(opts.model) or ""
        return report

    run_stage("verify", opts, write, report=VERIFY_JSON)
    log.info(format_markdown(report, short=True))
    return report


def _fill_request(candidate: Backend, reference: Backend) -> None:
    """A torch loop or oracle answers the request the reference graph was exported for (its
    beam and top-K, unless it was given its own); the two must take and return the same
    tensors."""
    for role, backend in (("reference", reference), ("candidate", candidate)):
        beam, topk = reference.request
        if beam and topk:
            backend.for_request(beam, topk)
        if backend.takes_request and not all(backend.request):
            raise user_error(f"--{role} {backend.name} needs an exported reference graph (for "
                             "beam/topk)")
    if candidate.inputs != reference.inputs or \
            sorted(candidate.outputs) != sorted(reference.outputs):
        raise user_error(f"the candidate's inputs/outputs {candidate.inputs}/"
                         f"{candidate.outputs} differ from the reference's {reference.inputs}/"
                         f"{reference.outputs}",
                         "compare graphs exported from the same model and options")


def _counting(runner, bar):
    """``runner`` with each ``infer`` call counted on ``bar`` (users done): Polygraphy's
    ``Comparator.run`` runs every batch through one runner, then the other, silently."""
    infer = runner.infer

    def counted(feed_dict, *args, **kwargs):
        outputs = infer(feed_dict, *args, **kwargs)
        bar.update(len(feed_dict["history"]))
        return outputs

    runner.infer = counted
    return runner


def _check_history_length(backend, role: str, length: int) -> None:
    """A graph or engine made for another history length than the model's is refused before
    it runs (ONNX Runtime would read the model's [N, S] histories as other shapes)."""
    from onerec_trt.graphs import input_dims

    declared = input_dims(backend.path, "history") if backend.kind == "ort" else None
    taken = declared[1] if declared and len(declared) == 2 else None
    if taken is None and backend.export is not None:
        taken = backend.export.history_length
    if taken is not None and taken != length:
        raise user_error(f"--{role} {backend.name} takes histories of {taken} items, the model "
                         f"{length}", "compare graphs exported from this model "
                                      "(onerec-trt export --model ...)")


def _outputs(iterations) -> tuple[np.ndarray, np.ndarray]:
    """One runner's ``items`` and ``scores`` over every batch."""
    return (np.concatenate([np.asarray(it["items"]) for it in iterations]),
            np.concatenate([np.asarray(it["scores"]) for it in iterations]))


def _check_same_shapes(ref_items: np.ndarray, cand_items: np.ndarray, ref_scores: np.ndarray,
                       cand_scores: np.ndarray, users: int) -> None:
    shapes = {"reference": (ref_items.shape, ref_scores.shape),
              "candidate": (cand_items.shape, cand_scores.shape)}
    for role, (items, scores) in shapes.items():
        if items != scores or len(items) != 2 or items[0] != users:
            raise user_error(f"the {role} returned items {list(items)} and scores "
                             f"{list(scores)} for {users} users",
                             "expected [users, K] each: a graph exported by 'onerec-trt export'")
    if shapes["reference"] != shapes["candidate"]:
        raise user_error(f"the candidate returns {shapes['candidate'][0][1]} items per user, "
                         f"the reference {shapes['reference'][0][1]}",
                         "compare graphs exported with the same --topk")
    _check_topk(ref_items.shape[1], "the reference")  # a graph without its export.json


def _check_topk(topk: int, what: str) -> None:
    """verify's gates and metrics are @10 (and @5): a graph returning fewer items is refused
    (at the start where its export.json says K)."""
    if topk < MIN_TOPK:
        raise user_error(f"{what} returns {topk} items per user; verify compares the top "
                         f"{MIN_TOPK} (overlap@10, Recall@10, NDCG@10)",
                         f"export with --topk {MIN_TOPK} or more (the default is 10)")


def _nan_users(scores: np.ndarray) -> int:
    return int(np.isnan(scores).any(axis=1).sum())


def _gate(value, threshold: str, ok: bool, reason: str) -> dict:
    return {"value": value, "threshold": threshold, "pass": ok,
            "decision": PASS if ok else FAIL, "reason": reason}


def _metric_gate(d: dict, margin: float, users: int) -> dict:
    """A Recall/NDCG gate: the non-inferiority decision on the measured change's CI."""
    low, high = d["relative_diff_ci"]
    verdict = decide(RelativeChange(d["relative_diff"], low, high, d["confidence"]), margin,
                     users)
    gate = {"value": d["relative_diff"], "ci": [low, high],
            "threshold": f"margin -{margin:g} ({d['confidence']:.0%} CI)",
            "pass": verdict.decision != FAIL, "decision": verdict.decision,
            "reason": verdict.reason}
    if verdict.users_needed is not None:
        gate["users_needed"] = verdict.users_needed
    return gate


def _gates(g: Gates, m: dict, scores_ok: bool, opts: VerifyOptions, users: int) -> dict:
    """Each gate with its decision and reason. Overlap@10 is the primary signal (a plain
    threshold); Recall/NDCG are non-inferiority tests, which may be inconclusive."""
    ok = m["overlap@10"] >= g.min_overlap_at_10
    gates = {"overlap@10": _gate(
        m["overlap@10"], f">= {g.min_overlap_at_10}", ok,
        f"mean overlap@10 {m['overlap@10']:.4f} {'>=' if ok else '<'} {g.min_overlap_at_10}"
        + ("" if ok else ": keep more GEMMs in bf16; 'onerec-trt quantize --search' finds the "
                         "largest FP8 share that holds the overlap on validation users"))}
    if "recall@10" in m:  # with targets (a dataset's held-out users)
        gates["recall@10_relative_change"] = _metric_gate(m["recall@10"], g.max_recall_drop,
                                                          users)
        gates["ndcg@10_relative_change"] = _metric_gate(m["ndcg@10"], g.max_ndcg_drop, users)
    nan = m["nan_score_users"]
    bad = nan["reference"] + nan["candidate"]
    gates["finite_scores"] = _gate(
        bad, "0 users with NaN scores", not bad,
        f"NaN scores for {nan['candidate']} candidate and {nan['reference']} reference users: "
        "the graph computes NaN (damaged weights or scales)" if bad else "no NaN scores")
    p99 = m["scores_abs_error"]["p99"]
    gates["scores_tensor"] = _gate(
        p99, f"p{opts.scores_quantile * 100:g} |diff| <= {opts.scores_atol} or rel <= "
             f"{opts.scores_rtol} (Polygraphy SimpleCompareFunc)", scores_ok,
        f"p99 |diff| {p99:.4g}: {'within' if scores_ok else 'outside'} the tolerances")
    return gates

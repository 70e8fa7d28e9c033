"""``bench()``'s body: validate, discover backends, measure them in workers, write the report."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from pathlib import Path

from onerec_trt.artifacts import check_out, staged_folder, write_json, write_manifest, write_text
from onerec_trt.bench import BenchOptions, BenchReport
from onerec_trt.bench.backends import BackendSpec, Sources, discover, parse_names
from onerec_trt.bench.machine import describe_machine, one_line
from onerec_trt.bench.pool import BackendWorker, Measurements, WorkerFailed, measure
from onerec_trt.bench.report import CPU_CAVEAT, format_markdown, pair_note, plot_throughput
from onerec_trt.bench.sources import STAGE_FOLDERS, resolve_folders
from onerec_trt.bench.stats import PAIRS, agreement, form_pairs, latency_summary
from onerec_trt.errors import user_error

SCHEDULE = ("per batch size: warm-up calls, then in every repetition each backend runs one "
            "request back to back, forward order on even repetitions and reversed on odd ones; "
            "one backend computes at a time")


def _validate(opts: BenchOptions) -> None:
    if not opts.batches or any(b <= 0 for b in opts.batches):
        raise user_error(f"--batch needs positive user counts, got {opts.batches}")
    for name in ("reps", "threads", "scaling_users", "scaling_reps", "agreement_batch"):
        if getattr(opts, name) <= 0:
            raise user_error(f"--{name.replace('_', '-')} must be positive, "
                             f"got {getattr(opts, name)}")
    if opts.warmup < 0 or opts.max_call_s <= 0:
        raise user_error("--warmup must be >= 0 and --max-call-s > 0")
    if opts.beam is not None and not 1 <= opts.beam <= 3840:
        raise user_error(f"--beam {opts.beam} must be between 1 and 3840 (TensorRT's TopK limit)")
    if opts.device not in ("cpu", "cuda"):
        raise user_error(f"--device {opts.device!r} must be cpu or cuda")
    if opts.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise user_error("--device cuda: no CUDA device here", "use --device cpu")
    if opts.out:  # before any work: not a file, writable, new or --force
        check_out(opts.out, force=opts.force)


def _resolve(opts: BenchOptions, names: list[str], sha: str | None,
             log) -> BenchOptions:
    """``opts`` with every stage folder and ``--out`` filled in (``bench/sources.py``)."""
    folders = resolve_folders(opts, sha, names)
    if folders.found_in:
        log(f"graphs of --model {opts.model}: {folders.found_in}")
    paths = {f: None if getattr(folders, f) is None else str(getattr(folders, f))
             for f in (*STAGE_FOLDERS, "out")}
    resolved = replace(opts, **paths)
    inputs = [opts.model, opts.histories, *(paths[f] for f in STAGE_FOLDERS)]
    check_out(resolved.out, inputs, force=opts.force)  # --force must not delete the graphs
    return resolved


def _request(opts: BenchOptions, bundle, sha: str | None) -> tuple[dict, Sources]:
    """The model's facts and the request shape (beam/top-K from the graphs unless given)."""
    from onerec_trt.export import find_report
    from onerec_trt.layout import CPU_GRAPH
    from onerec_trt.model.checkpoint import resolve_model_path

    exported = find_report(Path(opts.onnx) / CPU_GRAPH) if opts.onnx else None
    beam = opts.beam or (exported.beam if exported else 20)
    topk = opts.topk or (exported.topk if exported and beam == exported.beam else None) \
        or min(10, beam)
    if not 1 <= topk <= beam:
        raise user_error(f"--topk {topk} must be between 1 and the beam {beam}")
    model = {"path": str(resolve_model_path(opts.model)), "sha256": sha,
             "config": bundle.config.to_dict(),
             "parameters": sum(p.numel() for p in bundle.model.parameters())}
    request = {"beam": beam, "topk": topk, "history_length": bundle.config.max_history,
               "num_items": bundle.semantic_ids.num_items, "seed": opts.seed,
               "histories": "synthetic: uniform random item ids, full length (the graphs' "
                            "cost does not depend on the ids)"}
    if opts.histories:
        from onerec_trt.data.histories import load_histories

        load_histories(opts.histories, bundle.config.max_history, bundle.config.num_items)
        request |= {"histories": f"--histories {opts.histories} (rows taken in turn)",
                    "histories_file": str(Path(opts.histories).resolve())}
    src = Sources(opts.model, sha, *(Path(getattr(opts, f) or ".") for f in STAGE_FOLDERS),
                  beam)
    return {"model": model, "request": request}, src


def _start(found: list[BackendSpec], opts: BenchOptions, request: dict, skipped: dict,
           log) -> tuple[dict[str, BackendWorker], dict[str, dict]]:
    workers, loaded = {}, {}
    for spec in found:
        workers[spec.name] = BackendWorker(spec.name, opts.threads)
    for spec in found:
        worker = workers[spec.name]
        payload = {**spec.to_json(), **request, "model": opts.model, "threads": opts.threads,
                   "device": opts.device if spec.kind == "torch" else "cpu"}
        try:
            loaded[spec.name] = worker.call("load", spec=payload)
        except WorkerFailed as exc:
            skipped[spec.name] = f"failed to load: {exc}"
            log(f"skip {spec.name}: {skipped[spec.name]}")
            worker.close()
            del workers[spec.name]
    return workers, loaded


def _agreement(workers: dict[str, BackendWorker], batch: int) -> dict:
    """Outputs of one request on every backend: each against torch-bf16 (is it the same
    computation?) and each FP8 backend against its BF16 partner (what FP8 changed)."""
    import numpy as np

    outputs, failed = {}, {}
    for name, worker in workers.items():
        try:
            reply = worker.call("outputs", batch=batch)
            outputs[name] = (np.asarray(reply["items"]), np.asarray(reply["scores"]))
        except WorkerFailed as exc:
            failed[name] = str(exc)
    if not outputs:
        return {"batch": batch, "failed": failed} if failed else {}
    partners = {fp8: bf16 for fp8, bf16 in PAIRS}
    reference = "torch-bf16" if "torch-bf16" in outputs else next(iter(outputs))
    table = {}
    for name, value in outputs.items():
        refs = [r for r in (reference, partners.get(name)) if r in outputs and r != name]
        if refs:
            table[name] = {r: agreement(*outputs[r], *value) for r in refs}
    return {"batch": batch, "reference": reference, "pairs": table, "failed": failed}


def _backend_results(found, loaded, m: Measurements) -> dict:
    out = {}
    for spec in found:
        if spec.name not in loaded:
            continue
        timings = m.timings.get(spec.name, {})
        out[spec.name] = {
            **spec.to_json(), "info": loaded[spec.name]["info"],
            "rss_start_kb": loaded[spec.name]["rss_start_kb"],
            "rss_loaded_kb": loaded[spec.name]["rss_loaded_kb"],
            "results": {str(b): latency_summary(t, b) for b, t in sorted(timings.items())},
            "memory": {str(b): {k: v for k, v in mem.items() if k != "ok"}
                       for b, mem in sorted(m.memory.get(spec.name, {}).items())},
            "latencies_s": {str(b): t for b, t in sorted(timings.items())},
            "stopped": m.stopped.get(spec.name),
        }
    return out


def run_bench(opts: BenchOptions, log=print) -> BenchReport:
    t0 = time.perf_counter()
    from onerec_trt.model.checkpoint import load_model, model_hash, resolve_model_path

    _validate(opts)
    names = parse_names(opts.backends)
    if not resolve_model_path(opts.model).is_dir():
        load_model(opts.model)  # raises: a missing model is named before its graphs
    sha = model_hash(opts.model)
    opts = _resolve(opts, names, sha, log)  # before loading: a refusal costs no model load
    facts, src = _request(opts, load_model(opts.model), sha)
    found, skipped = discover(names, src)
    for name, why in skipped.items():
        log(f"skip {name}: {why}")
    if not found:
        raise user_error("no backend can run here", "see the reasons above")
    machine = describe_machine(gpu=opts.device == "cuda" or any(s.kind == "trt" for s in found))
    log(f"bench on {one_line(machine)}: {', '.join(s.name for s in found)}; batches "
        f"{sorted(opts.batches)}, {opts.reps} alternating repetitions")
    workers, loaded = _start(found, opts, facts["request"], skipped, log)
    try:
        m = measure(workers, sorted(set(opts.batches)), opts.reps, opts.warmup, opts.max_call_s,
                    {s.name: s.max_batch for s in found}, opts.progress)
        limits = [s.max_batch for s in found if s.max_batch and s.name in workers]
        agreement = _agreement(workers, min([opts.agreement_batch, *limits]))
    finally:
        for worker in workers.values():
            worker.close()
    for name, why in m.stopped.items():
        log(f"note {name}: {why}")
    backends = _backend_results(found, loaded, m)
    kinds = {n: b["kind"] for n, b in backends.items()}
    pairs = form_pairs({n: b for n, b in m.timings.items() if n in backends})
    for pair in pairs:
        pair["kind"] = "tensorrt" if kinds[pair["fp8"]] == "trt" else "cpu-simulation"
        pair["note"] = pair_note(pair, kinds, machine)
        pair["by_batch"] = {str(b): r for b, r in pair["by_batch"].items()}
    result = {
        "command": opts.command or "onerec_trt.bench.bench(BenchOptions(...)): see options",
        "machine": machine, **facts, "options": asdict(opts), "schedule": SCHEDULE,
        "order_first_batch": m.order, "backends": backends, "pairs": pairs,
        "skipped": skipped, "agreement": agreement,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }
    if opts.scaling:
        from onerec_trt.bench.scaling import ScalingOptions, run_scaling

        result["scaling"] = run_scaling(ScalingOptions.from_bench(opts, facts), log)
    result["seconds"] = time.perf_counter() - t0
    _write(opts, result)
    _print_summary(result, log)
    return BenchReport.from_json(result)


def _write(opts: BenchOptions, result: dict) -> None:
    with staged_folder(opts.out, force=opts.force, inputs=opts) as tmp:
        write_json(tmp / "bench.json", result)
        write_text(tmp / "bench.md", format_markdown(result))
        plot_throughput(result, tmp / "bench.png")
        if result.get("scaling"):
            from onerec_trt.bench.scaling import plot_scaling

            plot_scaling(result["scaling"], tmp / "scaling.png")
        write_manifest(tmp, "bench", asdict(opts),
                       inputs={"model": result["model"]["sha256"] or ""})


def _print_summary(result: dict, log) -> None:
    log(f"{'backend':<18}{'batch':>6}{'p50 ms':>10}{'p99 ms':>10}{'users/s':>10}{'peak MiB':>10}")
    for name, b in result["backends"].items():
        for batch, r in b["results"].items():
            peak = b["memory"].get(batch, {}).get("VmHWM")
            log(f"{name:<18}{batch:>6}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}"
                f"{r['throughput_users_per_s']:>10.1f}"
                f"{'-' if peak is None else f'{peak / 1024:.0f}':>10}")
    for pair in result["pairs"]:
        for batch, r in pair["by_batch"].items():
            log(f"ratio {pair['fp8']}/{pair['bf16']} batch {batch}: latency "
                f"{r['latency_ratio']:.3f} (q25-q75 {r['ratio_q25']:.3f}-{r['ratio_q75']:.3f}), "
                f"throughput {r['throughput_ratio']:.3f}")
    if any(p["kind"] == "cpu-simulation" for p in result["pairs"]):
        log(CPU_CAVEAT)
    log(f"ran: {', '.join(result['backends']) or 'none'}")
    for name, why in result["skipped"].items():
        log(f"skipped {name}: {why}")
    log(f"wrote {result['options']['out']} in {result['seconds']:.0f}s")

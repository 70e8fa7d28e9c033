"""``bench()``'s body: validate, discover backends, measure them in workers, write the report."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

from onerec_trt.artifacts import write_json, write_text
from onerec_trt.bench import BenchOptions, BenchReport
from onerec_trt.bench.backends import (
    Found,
    Sources,
    discover,
    given_options,
    make_backend,
    requested,
    to_worker,
)
from onerec_trt.bench.machine import describe_machine, one_line
from onerec_trt.bench.peers import (
    DIFFERENCES,
    check,
    discover_peers,
    optimum_reason,
    parse_peers,
    reference_of,
)
from onerec_trt.bench.peers import speedups as peer_speedups
from onerec_trt.bench.pool import BackendWorker, Measurements, WorkerFailed, measure
from onerec_trt.bench.report import (
    CPU_CAVEAT,
    format_markdown,
    pair_note,
    plot_throughput,
    summary_lines,
)
from onerec_trt.bench.sources import (
    STAGE_FOLDERS,
    Folders,
    export_graphs,
    final_paths,
    not_made,
    resolve_folders,
)
from onerec_trt.bench.stats import PAIRS, agreement, form_pairs, latency_summary
from onerec_trt.errors import UserError, user_error
from onerec_trt.stage_runner import StagedRun, check_stage_out, run_stage

log = logging.getLogger(__name__)

PEER_USERS = 200  # --peers without --users: this many held-out test users

SCHEDULE = ("per batch size: warm-up calls, then in every repetition each backend runs one "
            "request back to back, forward order on even repetitions and reversed on odd ones; "
            "one backend computes at a time; repetition r sends every backend the same users "
            "(rows r*batch.. of the histories), so with --rounds R every user is timed R times "
            "per batch size on every backend")


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
    if opts.rounds is not None and opts.rounds <= 0 or opts.users is not None and opts.users <= 0:
        raise user_error("--users and --rounds must be positive")
    if opts.users and opts.histories:
        raise user_error("--users and --histories both name the requests", "give one")
    if opts.out:  # before any work: not a file, writable, new or --force
        check_stage_out(opts, inputs=())


def _resolve(opts: BenchOptions, names: list[str],
             sha: str | None) -> tuple[BenchOptions, Folders]:
    """``opts`` with every stage folder and ``--out`` filled in (``bench/sources.py``)."""
    folders = resolve_folders(opts, sha, names)
    if folders.found_in:
        log.info(f"graphs of --model {opts.model}: {folders.found_in}")
    paths = {f: None if getattr(folders, f) is None else str(getattr(folders, f))
             for f in (*STAGE_FOLDERS, "out")}
    resolved = replace(opts, **paths)
    check_stage_out(resolved, inputs=_inputs(resolved, folders))  # keep the graphs
    return resolved, folders


def _inputs(opts: BenchOptions, folders: Folders) -> BenchOptions:
    """What ``--force`` must not delete: the options' paths, less the graphs bench exports
    into its own ``--out``."""
    return replace(opts, onnx=None) if folders.exported else opts


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
    if opts.users:
        request |= _test_users(opts, bundle, opts.users)
    elif opts.peers and not opts.histories:  # peers are compared on real users by default
        request |= _default_peer_users(opts, bundle)
    elif opts.histories:
        from onerec_trt.data.histories import load_histories

        load_histories(opts.histories, bundle.config.max_history, bundle.config.num_items)
        request |= {"histories": f"--histories {opts.histories} (rows taken in turn)",
                    "histories_file": str(Path(opts.histories).resolve())}
    src = Sources(opts.model, sha, *(Path(getattr(opts, f) or ".") for f in STAGE_FOLDERS),
                  beam)
    return {"model": model, "request": request}, src


def _default_peer_users(opts: BenchOptions, bundle) -> dict:
    """--peers without --users/--histories: the first PEER_USERS held-out test users, or the
    synthetic histories (said so) when the model's dataset cannot be read here."""
    from onerec_trt.errors import UserError

    try:
        return _test_users(opts, bundle, PEER_USERS)
    except UserError as exc:
        return {"histories": "synthetic: uniform random item ids, full length (the model's "
                             f"test users could not be read: {str(exc).splitlines()[0]})"}


def _test_users(opts: BenchOptions, bundle, users: int) -> dict:
    """``--users N``: a seeded sample of the dataset's held-out test users, in a file the
    workers read (removed after the run)."""
    import tempfile

    import numpy as np

    from onerec_trt.data.samplers import held_out

    rows, _ = held_out(bundle.load_data().split(), "test", users, bundle.config.max_history,
                       opts.seed)
    handle = tempfile.NamedTemporaryFile(prefix="bench-users-", suffix=".npy", delete=False)
    np.save(handle, rows)
    handle.close()
    return {"histories": f"{len(rows)} held-out test users of the model's dataset (seed "
                         f"{opts.seed}, left-padded to {bundle.config.max_history})",
            "histories_file": handle.name, "users": len(rows), "temporary_file": True}


def _reps(opts: BenchOptions, request: dict) -> int | dict[int, int]:
    """``--rounds R`` with a histories file: R passes over every user at each batch size."""
    if not opts.rounds or not request.get("histories_file"):
        return opts.reps
    import numpy as np

    n = len(np.load(request["histories_file"], mmap_mode="r"))
    return {b: opts.rounds * -(-n // b) for b in opts.batches}


def _peers(opts: BenchOptions, workers: dict, timings: dict, peer_names: list[str],
           notes: dict) -> dict | None:
    """Each peer's items against the project's graph on every user timed, and the speed-ups
    (only for a peer that agrees: a disagreeing one is reported, not timed as if equal)."""
    if not peer_names:
        return None
    reference = reference_of(list(workers), peer_names)
    out = {"reference": reference, "notes": notes, "peers": {}}
    if "optimum" not in opts.peers:  # said even when not requested: the table's other peer
        out["optimum"] = f"not requested (--peers optimum); it would not run here: " \
                         f"{optimum_reason()}"
    if reference is None:
        return out
    answers = {}
    for name in [reference, *peer_names]:
        try:
            answers[name] = workers[name].call("timed_outputs")["users"]
        except WorkerFailed as exc:
            out["peers"][name] = {"failed": str(exc)}
    project = [n for n in workers if n not in peer_names]
    for peer in peer_names:
        if peer not in answers or reference not in answers or peer == reference:
            continue
        same = check(answers[reference], answers[peer])
        out["peers"][peer] = {**same, "against": reference,
                              "differs_by": DIFFERENCES.get(peer, ""),
                              "speedups": peer_speedups(timings, peer, project)
                              if same["agrees"] else {}}
    return out


def _start(found: list[Found], opts: BenchOptions, request: dict,
           skipped: dict) -> tuple[dict[str, BackendWorker], dict[str, dict]]:
    workers, loaded = {}, {}
    for spec in found:
        workers[spec.name] = BackendWorker(spec.name, opts.threads)
    for spec in found:
        worker = workers[spec.name]
        payload = {**spec.to_json(), **request}
        try:
            backend = spec.backend or make_backend(
                spec, opts.model, request["beam"], request["topk"], opts.threads,
                opts.device if spec.kind == "torch" else "cpu")
            backend.for_request(request["beam"], request["topk"])
            loaded[spec.name] = worker.call("load", spec=payload, backend=to_worker(backend))
        except (WorkerFailed, UserError) as exc:
            skipped[spec.name] = f"failed to load: {exc}"
            log.info(f"skip {spec.name}: {skipped[spec.name]}")
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
            "load_s": loaded[spec.name].get("load_s"),
            "results": {str(b): latency_summary(t, b) for b, t in sorted(timings.items())},
            "memory": {str(b): {k: v for k, v in mem.items() if k != "ok"}
                       for b, mem in sorted(m.memory.get(spec.name, {}).items())},
            "latencies_s": {str(b): t for b, t in sorted(timings.items())},
            "stopped": m.stopped.get(spec.name),
        }
    return out


def run_bench(opts: BenchOptions, given: dict | None = None) -> BenchReport:
    t0 = time.perf_counter()
    from onerec_trt.model.checkpoint import load_model, model_hash, resolve_model_path

    _validate(opts)
    if given:
        opts = given_options(opts, given)
    names = [] if given else requested(opts.backends)
    peer_names = parse_peers(opts.peers)
    if not resolve_model_path(opts.model).is_dir():
        load_model(opts.model)  # raises: a missing model is named before its graphs
    sha = model_hash(opts.model)
    opts, folders = _resolve(opts, names, sha)  # before loading: a refusal costs no load

    def measure_into(run: StagedRun) -> dict:
        tmp = run.folder
        made = export_graphs(opts, tmp / "onnx") if folders.exported else None
        reading = replace(opts, onnx=str(tmp / "onnx")) if made else opts
        result = _measure(opts, reading, names, not_made(names, folders, opts.model), sha,
                          peer_names, t0, given)
        if made:
            result = final_paths({**result, "exported": made}, tmp, opts.out)
        _write(run, result)
        return result

    result = run_stage("bench", opts, measure_into, inputs=_inputs(opts, folders))
    _print_summary(result)
    return BenchReport.from_json(result)


def _measure(opts: BenchOptions, reading: BenchOptions, names: list[str],
             unmade: dict[str, str], sha: str | None, peer_names: list[str],
             t0: float, given: dict | None = None) -> dict:
    """bench.json's content: every backend that can run, measured (``reading``: ``opts`` with
    the folders the workers read, the staged export when bench exported the graphs)."""
    from onerec_trt.model.checkpoint import load_model, resolve_model_path
    from onerec_trt.model.folder import IMPORT_JSON

    facts, src = _request(reading, load_model(opts.model), sha)
    found, skipped = discover([n for n in names if n not in unmade], src)
    found += [Found.given(name, backend) for name, backend in (given or {}).items()]
    skipped = {n: (unmade | skipped)[n] for n in names if n in unmade | skipped}
    imported = (resolve_model_path(opts.model) / IMPORT_JSON).is_file()
    extra, peer_skipped, notes = discover_peers(peer_names, imported, [s.name for s in found])
    found += extra
    skipped |= peer_skipped
    peer_names = [n for n in notes] + [s.name for s in extra if s.name not in notes]
    for name, why in skipped.items():
        log.info(f"skip {name}: {why}")
    if not found:
        raise user_error("no backend can run here", "see the reasons above")
    machine = describe_machine(gpu=opts.device == "cuda" or any(s.kind == "trt" for s in found))
    log.info(f"bench on {one_line(machine)}: {', '.join(s.name for s in found)}; batches "
             f"{sorted(opts.batches)}, {_reps(opts, facts['request'])} alternating repetitions")
    workers, loaded = _start(found, opts, facts["request"], skipped)
    try:
        m = measure(workers, sorted(set(opts.batches)), _reps(opts, facts["request"]),
                    opts.warmup, opts.max_call_s, {s.name: s.max_batch for s in found},
                    opts.progress)
        limits = [s.max_batch for s in found if s.max_batch and s.name in workers]
        agreement = _agreement(workers, min([opts.agreement_batch, *limits]))
        peers = _peers(opts, workers, m.timings, [n for n in peer_names if n in workers], notes)
    finally:
        for worker in workers.values():
            worker.close()
        if facts["request"].get("temporary_file"):
            Path(facts["request"]["histories_file"]).unlink(missing_ok=True)
    for name, why in m.stopped.items():
        log.info(f"note {name}: {why}")
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
        "skipped": skipped, "agreement": agreement, "peers": peers,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }
    if opts.scaling:
        from onerec_trt.bench.scaling import ScalingOptions, run_scaling

        result["scaling"] = run_scaling(ScalingOptions.from_bench(opts, facts))
    result["seconds"] = time.perf_counter() - t0
    return result


def _write(run: StagedRun, result: dict) -> None:
    """The report into bench's staged folder; the manifest records an export bench made (its
    options) beside the bench's own."""
    tmp = run.folder
    write_json(tmp / "bench.json", result)
    write_text(tmp / "bench.md", format_markdown(result))
    plot_throughput(result, tmp / "bench.png")
    if result.get("scaling"):
        from onerec_trt.bench.scaling import plot_scaling

        plot_scaling(result["scaling"], tmp / "scaling.png")
    run.inputs["model"] = result["model"]["sha256"] or ""
    if result.get("exported"):
        run.extra["exported"] = result["exported"]


def _print_summary(result: dict) -> None:
    for line in summary_lines(result):
        log.info(line)
    for pair in result["pairs"]:
        for batch, r in pair["by_batch"].items():
            log.info(f"ratio {pair['fp8']}/{pair['bf16']} batch {batch}: latency "
                     f"{r['latency_ratio']:.3f} (q25-q75 {r['ratio_q25']:.3f}-"
                     f"{r['ratio_q75']:.3f}), throughput {r['throughput_ratio']:.3f}")
    if any(p["kind"] == "cpu-simulation" for p in result["pairs"]):
        log.info(CPU_CAVEAT)
    for name, p in ((result.get("peers") or {}).get("peers") or {}).items():
        if "failed" in p:
            log.info(f"peer {name}: failed: {p['failed']}")
            continue
        log.info(f"peer {name} against {p['against']}: identical top-K for {p['identical']}/"
                 f"{p['users']} users, max score diff {p['max_score_diff']}"
                 + ("" if p["agrees"] else ": DISAGREES, not compared on speed"))
        for backend, by_batch in p["speedups"].items():
            for batch, r in by_batch.items():
                log.info(f"  {backend} is {r['latency_ratio']:.1f}x faster than {name} at batch "
                         f"{batch} (q25-q75 {r['ratio_q25']:.1f}-{r['ratio_q75']:.1f})")
    for note in ((result.get("peers") or {}).get("notes") or {}).values():
        log.info(f"peer: {note}")
    if (result.get("peers") or {}).get("optimum"):
        log.info(f"peer optimum: {result['peers']['optimum']}")
    log.info(f"ran: {', '.join(result['backends']) or 'none'}")
    for name, why in result["skipped"].items():
        log.info(f"skipped {name}: {why}")
    log.info(f"wrote {result['options']['out']} in {result['seconds']:.0f}s")

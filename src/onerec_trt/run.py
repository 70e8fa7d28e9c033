"""``onerec-trt run``: every stage in pipeline order, on one model, into one run folder.

evaluate (beside the baselines) -> analyze -> export -> quantize (with the analysis'
exclusions) -> plugins (both folders' graphs) -> lint -> build (where TensorRT exists) -> verify
(FP8 simulation against bf16) -> triton (a model repository) -> bench. Each stage is a call of
its package's entry function on the ``RunLayout``'s folders; each returns its report, and the
summary row reads that report's attributes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from onerec_trt.layout import BF16_GRAPH, DEFAULT_RUN, FP8_GRAPH, PLUGIN_GRAPHS, RunLayout

__all__ = ["run", "RunOptions"]

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    model: str = "default"  # the shipped model (MovieLens-1M) or a model folder
    out: str = str(DEFAULT_RUN.root)
    users: int | None = None  # test users evaluated (None: all)
    verify_users: int = 1000  # test users the FP8 gate compares on
    analyze: bool = True
    bench: bool = True
    progress: bool = True  # progress of the long stages (evaluate, analyze): a bar or log lines
    histories: str | None = None  # requests instead of the dataset (default for a model with
    # no dataset, from 'init' or 'import': its histories.npy; evaluation is skipped: no users)

    def requests(self) -> str | None:
        """The requests file the stages use, or None for the model's dataset."""
        from onerec_trt.model.checkpoint import read_training, resolve_model_path
        from onerec_trt.model.folder import HISTORIES

        training = read_training(self.model)
        if self.histories or (training.get("dataset") and not training.get("untrained")):
            return self.histories  # None: the model's dataset
        # no dataset: an untrained model from 'init', or an imported one without --dataset
        return str(resolve_model_path(self.model) / HISTORIES)


Row = tuple[str, str] | None  # (result, backend) for the summary, None: not in the summary
Stage = Callable[[RunLayout, RunOptions, dict], tuple[object, Row]]


def _evaluate(run: RunLayout, opts: RunOptions, done: dict):
    if opts.requests():
        return None, ("skipped: requests from a file have no held-out targets (a model without "
                      "a dataset, from 'init' or 'import', has no users)", "-")
    from onerec_trt.evaluate import EvalOptions, evaluate, format_report

    report = evaluate(EvalOptions(model=opts.model, users=opts.users, baselines=True),
                      progress=opts.progress)
    report.save(run.eval_json)
    log.info(format_report(report))
    markov = report.baselines["markov"]
    return report, (f"Recall@10 {report.recall_at_10:.4f} NDCG@10 {report.ndcg_at_10:.4f} "
                    f"(Markov {markov['recall@10']:.4f} / {markov['ndcg@10']:.4f}), "
                    f"{report.users} users", report.backend)


def _analyze(run: RunLayout, opts: RunOptions, done: dict):
    if not opts.analyze:
        return None, None
    from onerec_trt.analysis import AnalyzeOptions, analyze

    report = analyze(AnalyzeOptions(model=opts.model, out=str(run.analysis), force=True,
                                    histories=opts.requests()), progress=opts.progress)
    speedup = report.predicted_speedup("paper", "H200")
    shown = f"paper preset on H200: predicted FP8 speed-up {speedup:.2f}x; " if speedup else ""
    claim = "holds" if report.claim_holds else "does not hold"
    return report, (f"{len(report.excluded_layers)} FP8 exclusions; {shown}the paper's "
                    f"tame-vs-wild claim {claim} for these models (analysis/report.md)",
                    "torch CPU statistics + analytic roofline (no GPU run)")


def _export(run: RunLayout, opts: RunOptions, done: dict):
    from onerec_trt.export import ExportOptions, export

    report = export(ExportOptions(model=opts.model, out=str(run.onnx), force=True))
    return report, (f"{report.nodes[BF16_GRAPH]} nodes, beam {report.beam}, top "
                    f"{report.topk}, {report.step} beam step",
                    "torch.onnx (opset 19)")


def _quantize(run: RunLayout, opts: RunOptions, done: dict):
    from onerec_trt.quantize import QuantizeOptions, quantize

    exclusions = run.analysis / "exclusions.json"
    report = quantize(QuantizeOptions(model=opts.model, onnx=str(run.onnx), out=str(run.fp8),
                                      force=True, histories=opts.requests(),
                                      exclusions=str(exclusions)
                                      if exclusions.is_file() else None))
    return report, (f"{len(report.quantized_gemms)} GEMMs FP8 "
                    f"({report.fp8_flop_share:.0%} of a request's "
                    f"{'GEMM ' if report.flop_basis.startswith('nn.Linear') else ''}FLOPs, "
                    f"predicted {report.predicted_speedup['over_bf16']['H200']:.2f}x on H200), "
                    f"{len(report.excluded_gemms)} bf16, "
                    f"{report.calibration['users']} calibration users",
                    "nvidia-modelopt (torch PTQ)")


def _plugins(run: RunLayout, opts: RunOptions, done: dict):
    from onerec_trt.plugins import PluginsOptions, plugins

    report = plugins(PluginsOptions(onnx=str(run.onnx), fp8=str(run.fp8), out=str(run.plugins),
                                    force=True))
    agreed = all(c["identical_users"] == c["users"] for c in report.cpu_agreement.values())
    return report, (f"{len(report.graphs)} plugin graphs; CPU graphs "
                    f"{'agree' if agreed else 'DIFFER'} with the standard ones",
                    "onnx-graphsurgeon; ONNX Runtime custom ops")


def _lint(run: RunLayout, opts: RunOptions, done: dict):
    from onerec_trt.lint import lint

    graphs = [run.onnx / BF16_GRAPH, run.fp8 / FP8_GRAPH,
              run.plugins / PLUGIN_GRAPHS[BF16_GRAPH], run.plugins / PLUGIN_GRAPHS[FP8_GRAPH]]
    reports = {g.name: lint(g) for g in graphs if g.is_file()}
    for name, report in reports.items():
        log.info(f"{name}: {report.summary()}")
    errors = sum(len(r.errors) for r in reports.values())
    return ({k: r.summary() for k, r in reports.items()},
            (f"{len(reports)} graphs, {errors} errors", "TensorRT ONNX support table (10.15)"))


def _build(run: RunLayout, opts: RunOptions, done: dict):
    from onerec_trt.backends.tensorrt_lib import import_tensorrt
    from onerec_trt.errors import UserError

    try:
        import_tensorrt()
    except UserError as exc:
        log.info(f"skipped: {exc}")
        return None, ("skipped: TensorRT is not installed here", "-")
    from onerec_trt.builder import BuildOptions, build

    graphs = [str(run.plugins / PLUGIN_GRAPHS[BF16_GRAPH]),
              str(run.plugins / PLUGIN_GRAPHS[FP8_GRAPH])]
    report = build(BuildOptions(onnx=graphs, out=str(run.engines), force=True))
    return report, (f"{len(report.engines)} engines built", "TensorRT")


def _verify(run: RunLayout, opts: RunOptions, done: dict):
    from onerec_trt.commands.backends import verify_backends
    from onerec_trt.layout import CPU_GRAPH, FP8_CPU_GRAPH
    from onerec_trt.verify import VerifyOptions, verify

    options = VerifyOptions(reference=str(run.onnx / CPU_GRAPH),
                            candidate=str(run.fp8 / FP8_CPU_GRAPH), model=opts.model,
                            histories=opts.requests(), users=opts.verify_users,
                            out=str(run.verify), force=True)
    report = verify(options, *verify_backends(options))
    verdict = report.verdict  # PASS or FAIL, naming any inconclusive gate
    changes = (f", Recall@10 {report.relative_change('recall@10'):+.2%}, NDCG@10 "
               f"{report.relative_change('ndcg@10'):+.2%}" if report.measured_metrics else "")
    return report, (f"{verdict}: overlap@10 {report.overlap_at_10:.3f}{changes} "
                    f"({report.users} users)",
                    "polygraphy + onnxruntime CPU (FP8 simulation vs bf16)")


def _triton(run: RunLayout, opts: RunOptions, done: dict):
    from onerec_trt.triton.repository import RepositoryOptions, export_repository

    info = export_repository(RepositoryOptions(model=opts.model, onnx=str(run.onnx),
                                               fp8=str(run.fp8), out=str(run.triton), ab=True,
                                               force=True))
    return info, (f"{info.variant.upper()} repository: {', '.join(info.public)} "
                  f"(serve: onerec-trt triton serve --repo {run.triton})",
                  "Triton python backend + ONNX Runtime")


def _bench(run: RunLayout, opts: RunOptions, done: dict):
    if not opts.bench:
        return None, None
    from onerec_trt.bench import BenchOptions, bench

    report = bench(BenchOptions(model=opts.model, onnx=str(run.onnx), fp8=str(run.fp8),
                                plugins=str(run.plugins), engines=str(run.engines),
                                out=str(run.bench), batches=[1, 16], reps=5, force=True,
                                histories=opts.requests(), progress=False))
    return report, ("latency/throughput per backend: see bench/bench.md (a CPU simulation "
                    "says nothing about GPU speed)", "CPU")


STAGES: list[tuple[str, Stage]] = [
    ("evaluate", _evaluate), ("analyze", _analyze), ("export", _export),
    ("quantize", _quantize), ("plugins", _plugins), ("lint", _lint), ("build", _build),
    ("verify", _verify), ("triton", _triton), ("bench", _bench)]


def check_run_folder(opts: RunOptions) -> None:
    """Before any work: the run folder is rewritten, not replaced; each stage's folder in it
    is replaced (``force`` for every stage), so none may be, hold or lie in the model or
    ``histories`` (``artifacts.check_out``, as the stage runner checks each stage)."""
    from onerec_trt.artifacts import check_out, inputs_of

    layout = RunLayout(opts.out)
    inputs = inputs_of(opts)
    for folder in (layout.analysis, layout.onnx, layout.fp8, layout.plugins, layout.engines,
                   layout.verify, layout.triton, layout.bench):
        check_out(folder, inputs, force=True)


def run(opts: RunOptions) -> dict:
    """Every stage into ``opts.out``; returns each stage's report by stage name."""
    from onerec_trt.artifacts import write_manifest, write_text
    from onerec_trt.tables import format_table

    t0 = time.time()
    check_run_folder(opts)
    layout = RunLayout(opts.out)
    layout.root.mkdir(parents=True, exist_ok=True)
    reports, rows = {}, []
    for name, stage in STAGES:
        start = time.time()
        log.info(f"\n== {name} ==")
        report, row = stage(layout, opts, reports)
        reports[name] = report
        if row is not None:
            rows.append([name, row[0], row[1], f"{time.time() - start:.0f} s"])
    summary = "# onerec-trt run\n\n" + format_table(["stage", "result", "backend", "time"], rows)
    write_text(layout.summary, summary + "\n")
    write_manifest(layout.root, "run", asdict(opts))
    log.info("\n" + summary)
    log.info(f"\nrun folder: {layout.root} ({time.time() - t0:.0f} s)")
    return reports

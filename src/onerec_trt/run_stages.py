"""The stages of ``onerec-trt run``, in order: each takes (run folder, options, earlier
results) and returns (its result, a summary row (result, backend) or None)."""

from __future__ import annotations

from pathlib import Path

from onerec_trt.artifacts import write_json
from onerec_trt.errors import UserError


def _eval(out: Path, opts, results):
    from onerec_trt.evaluate import EvalOptions, evaluate, format_report

    report = evaluate(EvalOptions(model="default", dataset="ml-1m", users=opts.users,
                                  baselines=True), progress=False)
    write_json(out / "eval.json", report)
    print(format_report(report))
    markov = report["baselines"]["markov"]
    return report, (f"Recall@10 {report['recall@10']:.4f} NDCG@10 {report['ndcg@10']:.4f} "
                    f"(Markov {markov['recall@10']:.4f} / {markov['ndcg@10']:.4f}), "
                    f"{report['users']} users", report["backend"])


def _analyze(out: Path, opts, results):
    if not opts.analyze:
        return None, None
    from onerec_trt.analysis import AnalyzeOptions, analyze

    report = analyze(AnalyzeOptions(out=str(out / "analysis"), force=True), progress=False)
    paper = report["roofline"].get("paper", {}).get("H200", {})
    speedup = paper.get("predicted_speedup")
    excluded = len(report["exclusions"].get("exclude", []))
    claim = "holds" if report["comparison"].get("holds") else "does not hold"
    shown = f"paper preset on H200: predicted FP8 speed-up {speedup:.2f}x; " if speedup else ""
    return report, (f"{excluded} FP8 exclusions; {shown}the paper's tame-vs-wild claim {claim} "
                    "for these models (analysis/report.md)",
                    "torch CPU statistics + analytic roofline (no GPU run)")


def _export(out: Path, opts, results):
    from onerec_trt.export import ExportOptions, export

    meta = export(ExportOptions(out=str(out / "onnx"), plugins=True, force=True))
    return meta, (f"{meta['nodes']['reference.bf16.onnx']} nodes, beam "
                  f"{meta['options']['beam']}, top {meta['options']['topk']}, + plugin graphs",
                  "torch.onnx (opset 19), onnx-graphsurgeon")


def _quantize(out: Path, opts, results):
    from onerec_trt.quantize import QuantizeOptions, quantize

    exclusions = out / "analysis" / "exclusions.json"
    report = quantize(QuantizeOptions(onnx=str(out / "onnx"), out=str(out / "fp8"), force=True,
                                      exclusions=str(exclusions) if exclusions.is_file()
                                      else None))
    from onerec_trt.plugins.stage import PluginSwapOptions, swap_folder

    swap_folder(out / "fp8", PluginSwapOptions(check_users=32, force=True))
    return report, (f"{len(report['quantized_gemms'])} GEMMs FP8, "
                    f"{len(report['excluded_gemms'])} excluded, "
                    f"{report['calibration']['users']} calibration users, + plugin graphs",
                    "nvidia-modelopt (torch PTQ)")


def _lint(out: Path, opts, results):
    from onerec_trt.build.lint import lint

    graphs = [out / "onnx" / "reference.bf16.onnx", out / "fp8" / "fp8.onnx",
              out / "onnx" / "reference.plugins.onnx", out / "fp8" / "fp8.plugins.onnx"]
    reports = {g.name: lint(g) for g in graphs if g.is_file()}
    for name, report in reports.items():
        print(f"{name}: {report.summary()}")
    errors = sum(len(r.errors) for r in reports.values())
    return ({k: r.summary() for k, r in reports.items()},
            (f"{len(reports)} graphs, {errors} errors", "TensorRT ONNX support table (10.15)"))


def _build(out: Path, opts, results):
    from onerec_trt.build.trt_builder import import_tensorrt

    try:
        import_tensorrt()
    except UserError as exc:
        print(f"skipped: {exc}")
        return None, ("skipped: TensorRT is not installed here", "-")
    from onerec_trt.build import BuildOptions, build

    graphs = [str(out / "onnx" / "reference.plugins.onnx"), str(out / "fp8" / "fp8.plugins.onnx")]
    report = build(BuildOptions(onnx=graphs, out=str(out / "engines"), force=True))
    return report, ("engines built", "TensorRT")


def _verify(out: Path, opts, results):
    from onerec_trt.verify import VerifyOptions, verify

    check = verify(VerifyOptions(reference=str(out / "onnx" / "reference.cpu.onnx"),
                                 candidate=str(out / "fp8" / "fp8.cpu.onnx"),
                                 users=opts.verify_users, out=str(out / "verify"), force=True))
    m = check["metrics"]
    return check, (f"{'PASS' if check['pass'] else 'FAIL'}: overlap@10 {m['overlap@10']:.3f}, "
                   f"Recall@10 {m['recall@10']['relative_diff']:+.2%}, NDCG@10 "
                   f"{m['ndcg@10']['relative_diff']:+.2%} ({check['users']} users)",
                   "polygraphy + onnxruntime CPU (FP8 simulation vs bf16)")


def _triton(out: Path, opts, results):
    from onerec_trt.serve.repository import RepositoryOptions, export_repository

    info = export_repository(RepositoryOptions(onnx=str(out / "onnx"), fp8=str(out / "fp8"),
                                               out=str(out / "triton"), ab=True, force=True))
    return info, (f"{info['variant'].upper()} repository: {', '.join(info['public'])} "
                  f"(serve: onerec-trt triton serve --repo {out / 'triton'})",
                  "Triton python backend + ONNX Runtime")


def _bench(out: Path, opts, results):
    if not opts.bench:
        return None, None
    from onerec_trt.bench import BenchOptions, bench

    result = bench(BenchOptions(onnx=str(out / "onnx"), fp8=str(out / "fp8"),
                                engines=str(out / "engines"), out=str(out / "bench"),
                                batches=[1, 16], reps=5, force=True, progress=False))
    return result, ("latency/throughput per backend: see bench/bench.md (a CPU simulation "
                    "says nothing about GPU speed)", "CPU")


STAGES = [("eval", _eval), ("analyze", _analyze), ("export", _export), ("quantize", _quantize),
          ("lint", _lint), ("build", _build), ("verify", _verify), ("triton", _triton),
          ("bench", _bench)]

"""``analyze()``'s body: profile the models, compare them, predict the roofline, write."""

from __future__ import annotations

import logging
import math
import time

import torch

from onerec_trt.analysis import PAPER_BEAM, REFERENCES, AnalysisReport, AnalyzeOptions
from onerec_trt.analysis.compare import compare_models, exclusions
from onerec_trt.artifacts import write_json, write_text
from onerec_trt.errors import user_error
from onerec_trt.roofline import dcn_ops, load_gpus, onerec_ops, roofline_section
from onerec_trt.stage_runner import StagedRun, check_stage_out, run_stage

log = logging.getLogger(__name__)


def _validate(opts: AnalyzeOptions) -> dict:
    """Every check that needs no heavy work, so a mistake costs one line, not minutes."""
    from onerec_trt.model.config import ModelConfig

    for name in ("calib_users", "calib_batch", "beam", "max_rows", "traditional_steps",
                 "traditional_samples", "lm_sentences", "roofline_users",
                 "roofline_candidates"):
        if getattr(opts, name) <= 0:
            raise user_error(f"--{name.replace('_', '-')} must be positive, "
                             f"got {getattr(opts, name)}")
    if opts.roofline_beam is not None and opts.roofline_beam <= 0:
        raise user_error(f"--roofline-beam must be positive, got {opts.roofline_beam}")
    if not math.isfinite(opts.threshold_db):
        raise user_error("--threshold-db must be a finite number of dB")
    unknown = sorted(set(opts.references) - set(REFERENCES))
    if unknown:
        raise user_error(f"unknown reference model {unknown[0]!r}",
                         f"expected any of: {', '.join(REFERENCES)} (or none)")
    gpus = load_gpus(opts.gpus)
    for preset in opts.presets:
        ModelConfig.from_preset(preset)
    return gpus


def run_analyze(opts: AnalyzeOptions, progress: bool = True) -> AnalysisReport:
    check_stage_out(opts)  # --out first, before any other check or work
    gpus = _validate(opts)
    report = run_stage("analyze", opts, lambda run: _analyze(opts, gpus, progress, run),
                       report="report.json")
    log.info(f"analysis written to {opts.out} ({len(report.exclusions['exclude'])} layer(s) "
             f"proposed for exclusion at {opts.threshold_db:g} dB)")
    return report


def _analyze(opts: AnalyzeOptions, gpus: dict, progress: bool, run: StagedRun) -> AnalysisReport:
    from onerec_trt.model.checkpoint import load_model, model_hash

    bundle = load_model(opts.model)
    profiles, skipped, seconds = _profiles(opts, bundle, progress)
    excl = exclusions(profiles["onerec"].layers, opts.threshold_db)
    summaries = {k: p.summary() for k, p in profiles.items()}
    comparison = compare_models(summaries)
    t1 = time.perf_counter()
    roofline = {"gpus": gpus, **roofline_section(_roofline_entries(opts, bundle, excl), gpus)}
    seconds["roofline"] = time.perf_counter() - t1
    seconds["total"] = run.seconds()
    report = AnalysisReport(
        stage="analyze", model=str(bundle.path),
        backend=f"torch {torch.__version__} CPU fp32; FP8 E4M3 round trips with "
                "torch.float8_e4m3fn; roofline: analytic prediction (no GPU run)",
        options=run.options, models={k: p.to_json() for k, p in profiles.items()} | skipped,
        comparison=comparison, exclusions=excl, roofline=roofline, seconds=seconds,
        untrained=bundle.untrained)
    _write(opts, report, profiles, excl, gpus, run.folder)
    run.inputs.update(model=model_hash(opts.model) or "", model_path=report.model)
    return report


def _profiles(opts: AnalyzeOptions, bundle, progress: bool):
    from onerec_trt.analysis.lm import lm_available, profile_lm
    from onerec_trt.analysis.movielens import movie_sentences
    from onerec_trt.analysis.onerec_source import profile_onerec
    from onerec_trt.analysis.traditional import TraditionalConfig, profile_traditional

    seconds, skipped = {}, {}
    t = time.perf_counter()
    histories, source = bundle.calibration_histories(
        opts.calib_users, opts.seed, opts.histories, opts.dataset, opts.data, opts.columns)
    profiles = {"onerec": profile_onerec(bundle, histories, source, opts.beam, opts.calib_batch,
                                         opts.max_rows, progress, opts.seed)}
    seconds["onerec"] = time.perf_counter() - t
    if "traditional" in opts.references:
        t = time.perf_counter()
        cfg = TraditionalConfig(steps=opts.traditional_steps, seed=opts.seed)
        profiles["traditional"] = profile_traditional(cfg, opts.traditional_samples,
                                                      opts.max_rows, progress)
        seconds["traditional"] = time.perf_counter() - t
    if "lm" in opts.references:
        reason = lm_available()
        if reason:
            log.info(f"language model skipped: {reason}")
            skipped["lm"] = {"skipped": reason}
        else:
            t = time.perf_counter()
            profiles["lm"] = profile_lm(movie_sentences(opts.lm_sentences, opts.seed), 64,
                                        opts.max_rows, progress, opts.seed)
            seconds["lm"] = time.perf_counter() - t
    return profiles, skipped, seconds


def _roofline_entries(opts: AnalyzeOptions, bundle, excl: dict) -> dict:
    from onerec_trt.analysis.traditional import FIELDS, TraditionalConfig
    from onerec_trt.model.config import ModelConfig

    excluded = frozenset(excl["exclude"])
    cfg = bundle.config
    entries = {} if hasattr(cfg, "family") else {"onerec": {  # imported: no analytic model
        "make_ops": lambda n, b: onerec_ops(cfg, n, b, excluded=excluded),
        "users": opts.roofline_users, "beam": opts.roofline_beam or opts.beam,
        "shape": {"history": cfg.max_history, "levels": cfg.levels},
        "description": f"the analyzed model ({bundle.path}); its FP8 exclusions stay BF16"}}
    for preset in opts.presets:
        pcfg = ModelConfig.from_preset(preset)
        default_beam = PAPER_BEAM if preset == "paper" else opts.beam
        entries[preset] = {
            "make_ops": lambda n, b, c=pcfg: onerec_ops(c, n, b),
            "users": opts.roofline_users, "beam": opts.roofline_beam or default_beam,
            "shape": {"history": pcfg.max_history, "levels": pcfg.levels},
            "description": f"preset {preset} (d={pcfg.d_model}, {pcfg.context_layers} context "
                           f"+ {pcfg.decoder_layers} decoder layers, codebooks "
                           f"{pcfg.codebook_sizes}); every GEMM in FP8"}
    tcfg = TraditionalConfig()
    entries["traditional"] = {
        "make_ops": lambda n, b: dcn_ops(tcfg, len(FIELDS), n, b),
        "users": opts.roofline_users, "beam": opts.roofline_candidates,
        "shape": {"candidates_per_user": opts.roofline_candidates},
        "description": "the DCN-v2 ranking model scoring N users x B candidates ('beam' = "
                       "candidates per user)"}
    return entries


def _write(opts, report: AnalysisReport, profiles, excl, gpus, tmp) -> None:
    from onerec_trt.analysis import plots
    from onerec_trt.analysis.report import render_markdown

    plots.histograms(profiles, tmp / "histograms.png")
    plots.sqnr_bars(profiles, opts.threshold_db, tmp / "fp8_sqnr.png")
    roof = report.roofline
    keys = [k for k in roof if k != "gpus"]
    chart_gpu = next(iter(gpus))
    plots.roofline_chart(gpus, {k: roof[k]["ops"] for k in keys},
                         {k: roof[k][chart_gpu]["sweep"] for k in keys}, chart_gpu,
                         tmp / "roofline.png")
    write_json(tmp / "exclusions.json", excl | {"model": report.model})
    write_text(tmp / "report.md", render_markdown(report.to_json()))

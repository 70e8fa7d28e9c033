"""``build()``'s body: validate, lint, then build every engine with TensorRT."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from onerec_trt.artifacts import write_atomic
from onerec_trt.backends.metadata import (
    FORMAT,
    EngineMetadata,
    GpuInfo,
    current_gpu,
    plan_version,
    sha256_bytes,
)
from onerec_trt.builder import BuildOptions, BuildReport
from onerec_trt.builder.jobs import Batches, EngineJob, engine_job
from onerec_trt.errors import user_error
from onerec_trt.layout import TIMING_CACHE
from onerec_trt.lint import lint
from onerec_trt.stage_runner import StagedRun, check_stage_out, run_stage

log = logging.getLogger(__name__)

FP8_MIN_CC = (8, 9)  # FP8 GEMMs: Ada, Hopper and newer (NVIDIA's TensorRT-RTX / TE matrices)


def _validate(opts: BuildOptions) -> list[EngineJob]:
    if not opts.onnx:
        raise user_error("no graph to build: pass --onnx FILE (once per engine)")
    if not 0 <= opts.opt_level <= 5:
        raise user_error(f"--opt-level {opts.opt_level} is outside TensorRT's 0-5")
    if opts.workspace is not None and opts.workspace <= 0:
        raise user_error(f"--workspace {opts.workspace} MiB must be positive")
    batches = Batches(opts.min_batch, opts.opt_batch, opts.max_batch)
    batches.validate()
    jobs = [engine_job(path, batches, opts.calibration) for path in opts.onnx]
    names = [job.name for job in jobs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise user_error(f"two graphs would both become {duplicated[0]}.plan",
                         "engines are named after their graph file: rename one")
    return jobs


def run_build(opts: BuildOptions) -> BuildReport:
    from onerec_trt.builder.commands import print_commands

    if not opts.print_commands:  # which writes nothing
        check_stage_out(opts)  # --out first, before any other check or work
    jobs = _validate(opts)
    out = Path(opts.out)
    cache_path = Path(opts.timing_cache) if opts.timing_cache else None
    # the lint comes first for --print-commands too: no commands for a graph TensorRT rejects
    # max_batch: every tensor's size at the profile's largest batch (TensorRT: < 2^31 elements)
    reports = [lint(job.onnx, max_batch=opts.max_batch) for job in jobs]
    ok = all(r.ok for r in reports)
    if not (ok and opts.print_commands):  # the printed commands stay a shell script
        for report in reports:
            for line in report.lines():
                log.info(line)
    if not ok:
        return BuildReport(ok=False, lint=[r.summary() for r in reports])
    if opts.print_commands:
        text = print_commands(jobs, out, opts.opt_level, opts.workspace, cache_path,
                              opts.plugin_library, [r.summary() for r in reports])
        log.info(text.rstrip())
        return BuildReport(ok=True, commands=text)
    return _build_all(opts, jobs, out, cache_path)


def _build_all(opts: BuildOptions, jobs: list[EngineJob], out: Path,
               cache_path: Path | None) -> BuildReport:
    from onerec_trt.backends.tensorrt_lib import import_tensorrt
    from onerec_trt.builder.trt_builder import BuildSettings, build_engine

    import_tensorrt()  # one clear line when it is missing, before anything else
    gpu = current_gpu()
    if gpu is None:
        raise user_error("no CUDA GPU is visible: TensorRT builds engines on the GPU they "
                         "will run on")
    if any(job.precision == "fp8" for job in jobs) and gpu.compute_capability < FP8_MIN_CC:
        raise user_error(f"FP8 engines need compute capability >= 8.9 (Ada, Hopper or newer); "
                         f"this {gpu.name} is {gpu.cc}", "build the bf16 graph only")
    settings = BuildSettings(
        opt_level=opts.opt_level,
        workspace_bytes=opts.workspace * 2**20 if opts.workspace else None,
        timing_cache=cache_path.read_bytes() if cache_path and cache_path.is_file() else b"",
        plugin_modules=list(opts.plugin_module), plugin_libraries=list(opts.plugin_library))
    recorded = {"opt_level": opts.opt_level, "workspace_mib": opts.workspace,
                "timing_cache": str(cache_path) if cache_path else None,
                "plugin_modules": settings.plugin_modules,
                "plugin_libraries": settings.plugin_libraries}
    t0 = time.perf_counter()

    def build_all(run: StagedRun) -> list[dict]:
        engines = []
        for job in jobs:
            log.info(f"building {job.name}.plan ({job.precision}) from {job.onnx} on {gpu.name}")
            built = build_engine(job, settings)
            settings.timing_cache = built.timing_cache  # reused by the next build
            meta = engine_metadata(job, built, gpu, recorded)
            EngineMetadata.write(run.folder, job.name, built.plan, meta)
            engines.append(meta)
            log.info(f"  {job.name}.plan: {len(built.plan) / 2**20:.1f} MiB in "
                     f"{built.seconds:.1f}s (TensorRT {built.tensorrt_version})")
        write_atomic(run.folder / TIMING_CACHE, lambda p: p.write_bytes(settings.timing_cache))
        run.inputs.update({job.onnx.name: job.onnx_sha256 for job in jobs})
        run.extra.update(tensorrt=engines[0]["tensorrt"]["version"], gpu=engines[0]["gpu"])
        return engines

    engines = run_stage("build", opts, build_all, out=out)
    if cache_path:
        write_atomic(cache_path, lambda p: p.write_bytes(settings.timing_cache))
    log.info(f"built {len(engines)} engine(s) -> {out} in {time.perf_counter() - t0:.1f}s")
    return BuildReport(ok=True, engines=engines)


def engine_metadata(job, built, gpu: GpuInfo, build: dict) -> dict:
    """The ``<name>.json`` of a freshly built engine (``job``: an EngineJob, ``built``: a
    BuiltEngine; ``build``: the builder settings worth recording)."""
    from onerec_trt import __version__

    header = plan_version(built.plan)
    calibration = job.calibration
    return {
        "format": FORMAT,
        "name": job.name,
        "plan": f"{job.name}.plan",
        "plan_sha256": sha256_bytes(built.plan),
        "precision": job.precision,
        "tensorrt": {"version": built.tensorrt_version,
                     "plan_header_version": None if header is None else
                     ".".join(map(str, header)),
                     "network_flags": built.network_flags,
                     "strongly_typed": True,
                     "version_compatible": False,
                     "hardware_compatibility": "NONE"},
        "gpu": {"name": gpu.name, "compute_capability": list(gpu.compute_capability)},
        "profile": {name: {"min": lo, "opt": opt, "max": hi}
                    for name, (lo, opt, hi) in job.profile.items()},
        "inputs": [{"name": n, "dtype": t, "shape": s} for n, (s, t) in built.inputs.items()],
        "outputs": [{"name": n, "dtype": t, "shape": s} for n, (s, t) in built.outputs.items()],
        "plugins": job.plugins,
        "onnx": {"path": str(job.onnx), "sha256": job.onnx_sha256},
        "calibration": None if calibration is None else {
            "path": str(calibration),
            "sha256": sha256_bytes(Path(calibration).read_bytes())},
        "model_sha256": job.model_sha256,
        "export": job.export,
        "build": {**build, "seconds": built.seconds},
        "onerec_trt": __version__,
    }

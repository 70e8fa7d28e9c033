"""The build stage: TensorRT engines from the exported graphs.

Each ``--onnx`` graph becomes ``<name>.plan`` (a BF16 engine from ``reference.bf16.onnx``, an
FP8 engine from the Q/DQ graph ``fp8.onnx``; precision comes from the graph, the network is
strongly typed) and ``<name>.json`` (what the plan needs and came from: TensorRT version, GPU,
profile, I/O, plugins, hashes of the graph, calibration and model). The lint runs first and
stops the build on any error; TensorRT is needed only after it (``trt_builder``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from onerec_trt.artifacts import staged_folder, write_atomic, write_manifest
from onerec_trt.build.jobs import Batches, EngineJob, engine_job
from onerec_trt.build.lint import lint
from onerec_trt.build.metadata import current_gpu, engine_metadata, write_engine
from onerec_trt.build.trt_builder import DEFAULT_PLUGIN_MODULE
from onerec_trt.errors import user_error

__all__ = ["build", "BuildOptions"]

DEFAULT_GRAPHS = ["runs/default/onnx/reference.bf16.onnx", "runs/default/fp8/fp8.onnx"]
TIMING_CACHE = "timing.cache"
FP8_MIN_CC = (8, 9)  # FP8 GEMMs: Ada, Hopper and newer (NVIDIA's TensorRT-RTX / TE matrices)


@dataclass
class BuildOptions:
    onnx: list[str] = field(default_factory=lambda: list(DEFAULT_GRAPHS))
    out: str = "runs/default/engines"
    min_batch: int = 1
    opt_batch: int = 32  # users per request the engine is tuned for
    max_batch: int = 256
    opt_level: int = 3  # TensorRT builder optimization level, 0-5
    workspace: int | None = None  # MiB; None: TensorRT's default (all device memory)
    timing_cache: str | None = None  # read if it exists, updated after the builds
    calibration: str | None = None  # default: calibration.json beside a Q/DQ graph
    plugin_module: list[str] = field(default_factory=lambda: [DEFAULT_PLUGIN_MODULE])
    plugin_library: list[str] = field(default_factory=list)
    print_commands: bool = False
    force: bool = False


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


def build(opts: BuildOptions, log=print) -> dict:
    """Lint, then build every graph; returns {"ok", "lint", "engines"} (ok False: lint failed)."""
    from onerec_trt.build.commands import print_commands

    jobs = _validate(opts)
    out = Path(opts.out)
    cache_path = Path(opts.timing_cache) if opts.timing_cache else None
    if opts.print_commands:
        text = print_commands(jobs, out, opts.opt_level, opts.workspace, cache_path,
                              opts.plugin_library)
        log(text.rstrip())
        return {"ok": True, "commands": text, "engines": []}
    if out.exists() and not opts.force:
        raise user_error(f"output folder already exists: {out}", "pass --force to replace it")
    reports = [lint(job.onnx) for job in jobs]
    for report in reports:
        for line in report.lines():
            log(line)
    if not all(r.ok for r in reports):
        return {"ok": False, "lint": [r.summary() for r in reports], "engines": []}
    return _build_all(opts, jobs, out, cache_path, log)


def _build_all(opts: BuildOptions, jobs: list[EngineJob], out: Path, cache_path: Path | None,
               log) -> dict:
    from onerec_trt.build.trt_builder import BuildSettings, build_engine, import_tensorrt

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
    engines, t0 = [], time.perf_counter()
    with staged_folder(out, force=opts.force) as tmp:
        for job in jobs:
            log(f"building {job.name}.plan ({job.precision}) from {job.onnx} on {gpu.name}")
            built = build_engine(job, settings, log)
            settings.timing_cache = built.timing_cache  # reused by the next build
            meta = engine_metadata(job, built, gpu, recorded)
            write_engine(tmp, job.name, built.plan, meta)
            engines.append(meta)
            log(f"  {job.name}.plan: {len(built.plan) / 2**20:.1f} MiB in {built.seconds:.1f}s "
                f"(TensorRT {built.tensorrt_version})")
        write_atomic(tmp / TIMING_CACHE, lambda p: p.write_bytes(settings.timing_cache))
        write_manifest(tmp, "build", asdict(opts),
                       inputs={job.onnx.name: job.onnx_sha256 for job in jobs},
                       tensorrt=engines[0]["tensorrt"]["version"], gpu=engines[0]["gpu"])
    if cache_path:
        write_atomic(cache_path, lambda p: p.write_bytes(settings.timing_cache))
    log(f"built {len(engines)} engine(s) -> {out} in {time.perf_counter() - t0:.1f}s")
    return {"ok": True, "engines": engines}

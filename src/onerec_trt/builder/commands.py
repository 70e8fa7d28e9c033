"""``onerec-trt build --print-commands``: the ``trtexec`` and ``polygraphy convert`` command
lines that build the same engines, for users who have only those tools."""

from __future__ import annotations

import shlex
from pathlib import Path

from onerec_trt.builder.jobs import EngineJob


def _dims(dims: list[int], sep: str) -> str:
    return sep.join(str(d) for d in dims)


def trtexec_command(job: EngineJob, out: Path, opt_level: int, workspace_mib: int | None,
                    timing_cache: Path, plugin_libraries: list[str]) -> list[str]:
    argv = ["trtexec", f"--onnx={job.onnx}", f"--saveEngine={out / (job.name + '.plan')}",
            "--stronglyTyped"]
    for flag, pick in (("--minShapes", 0), ("--optShapes", 1), ("--maxShapes", 2)):
        if job.profile:
            spec = ",".join(f"{name}:{_dims(shapes[pick], 'x')}"
                            for name, shapes in job.profile.items())
            argv.append(f"{flag}={spec}")
    argv.append(f"--builderOptimizationLevel={opt_level}")
    if workspace_mib:
        argv.append(f"--memPoolSize=workspace:{workspace_mib}M")
    argv.append(f"--timingCacheFile={timing_cache}")
    argv += [f"--dynamicPlugins={lib}" for lib in plugin_libraries]
    argv.append("--skipInference")
    return argv


def polygraphy_command(job: EngineJob, out: Path, opt_level: int, workspace_mib: int | None,
                       timing_cache: Path, plugin_libraries: list[str]) -> list[str]:
    argv = ["polygraphy", "convert", str(job.onnx), "--convert-to", "trt", "-o",
            str(out / (job.name + ".plan")), "--strongly-typed"]
    for flag, pick in (("--trt-min-shapes", 0), ("--trt-opt-shapes", 1),
                       ("--trt-max-shapes", 2)):
        if job.profile:
            argv += [flag, *(f"{name}:[{_dims(shapes[pick], ',')}]"
                             for name, shapes in job.profile.items())]
    argv += ["--builder-optimization-level", str(opt_level)]
    if workspace_mib:
        argv += ["--pool-limit", f"workspace:{workspace_mib}M"]
    argv += ["--load-timing-cache", str(timing_cache), "--save-timing-cache", str(timing_cache)]
    if plugin_libraries:
        argv += ["--plugins", *plugin_libraries]
    return argv


def print_commands(jobs: list[EngineJob], out: Path, opt_level: int, workspace_mib: int | None,
                   timing_cache: Path | None, plugin_libraries: list[str],
                   lint: list[str] = ()) -> str:
    """A shell script that builds every job with trtexec, and the Polygraphy equivalent
    (``lint``: the graphs' lint summaries, written as comments)."""
    cache = timing_cache or out / "timing.cache"
    lines = ["# TensorRT engines for onerec-trt: the equivalent of 'onerec-trt build'.",
             "# Precision comes from the graphs (strongly typed: bf16 tensors, FP8 Q/DQ); on "
             "TensorRT 11 every network",
             "# is strongly typed and --stronglyTyped / --strongly-typed may be dropped.",
             "# The metadata (<name>.json) that 'onerec-trt verify' and the runtime read is "
             "written only by 'onerec-trt build'.",
             *(f"# lint: {line}" for line in lint),
             f"mkdir -p {shlex.quote(str(out))}", ""]
    args = (out, opt_level, workspace_mib, cache, plugin_libraries)
    for job in jobs:
        lines.append(f"# {job.name}: {job.precision} engine from {job.onnx}")
        if job.plugins:
            names = ", ".join(f"{p['namespace']}::{p['name']}" for p in job.plugins)
            lines.append(f"# plugin nodes ({names}): trtexec and Polygraphy load plugin "
                         "libraries only; Python (tensorrt.plugin) plugins build with "
                         "'onerec-trt build'")
        lines.append(shlex.join(trtexec_command(job, *args)))
        lines.append("# or, with Polygraphy:")
        lines.append("# " + shlex.join(polygraphy_command(job, *args)))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"

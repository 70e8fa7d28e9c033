"""What machine a number came from: CPU, cores, memory, load, GPU, library versions.

Standard library only (torch is imported lazily, and only if already importable), so the
device script can use it on a machine with nothing but torch and numpy.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def _cpuinfo() -> str | None:
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return platform.processor() or None
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _memory_gib() -> float | None:
    path = Path("/proc/meminfo")
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return None


def gpu_info() -> dict | None:
    """Name, compute capability and memory of GPU 0, or None without torch or a GPU."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "compute_capability": list(torch.cuda.get_device_capability(0)),
            "memory_gib": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda,
            "count": torch.cuda.device_count()}


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name, dists in {"torch": ("torch",), "numpy": ("numpy",),
                        "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
                        "triton": ("triton",), "tensorrt": ("tensorrt", "tensorrt-cu12",
                                                            "tensorrt-cu13")}.items():
        for dist in dists:
            try:
                out[name] = md.version(dist)
                break
            except md.PackageNotFoundError:
                continue
    return out


def describe_machine(gpu: bool = True) -> dict:
    """A JSON-ready description; ``load_average`` is the 1/5/15-minute load when it was taken."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpuinfo(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "memory_gib": _memory_gib(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg")
        else None,
        "gpu": gpu_info() if gpu else None,
        "versions": versions(),
        "executable": sys.executable,
    }


def one_line(machine: dict) -> str:
    """'<cpu>, N cores (M usable), X GiB[, GPU]' for tables and logs."""
    text = f"{machine.get('cpu') or 'unknown CPU'}, {machine.get('cpu_count')} cores " \
           f"({machine.get('cpus_usable')} usable), {machine.get('memory_gib')} GiB"
    if machine.get("gpu"):
        text += f", {machine['gpu']['name']}"
    return text

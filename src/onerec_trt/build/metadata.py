"""Engine metadata: the ``<name>.json`` written beside each ``<name>.plan``, the plan header's
version, and the checks a loader runs before it hands a plan to TensorRT.

A plan is tied to the TensorRT version that built it and, by default, to the GPU's compute
capability (TENSORRT.md section 5); deserializing it elsewhere fails deep inside TensorRT. The
metadata says what the plan needs, so the loader can refuse it with a clear reason first.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from onerec_trt.artifacts import read_json, write_atomic, write_json
from onerec_trt.errors import user_error

FORMAT = "onerec-trt-engine/1"
PLAN_TAG = 0x74727466  # bytes "ftrt" read as a little-endian uint32
HEADER_BYTES = 28


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: tuple[int, int]

    @property
    def cc(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


def plan_version(data: bytes) -> tuple[int, int, int, int] | None:
    """The TensorRT version (major, minor, patch, build) that wrote a plan, from its header, the
    way ``trtexec --getPlanVersionOnly`` reads it: uint32 tag "ftrt" at 0, serialization
    version 0 at 4, then the version in bytes 24-27. None when the header has another layout.
    Raises ValueError when the bytes are not a TensorRT plan at all."""
    if len(data) < HEADER_BYTES:
        raise ValueError(f"{len(data)} bytes is too short for a TensorRT plan header")
    tag, serialization = struct.unpack_from("<II", data, 0)
    if tag != PLAN_TAG:
        raise ValueError(f"no TensorRT plan tag (found 0x{tag:08x}, expected 0x{PLAN_TAG:08x})")
    if serialization != 0:
        return None  # the version bytes may sit elsewhere in other serialization versions
    return tuple(data[24:28])


def parse_version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in str(text).split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def metadata_path(plan: str | Path) -> Path:
    return Path(plan).with_suffix(".json")


def read_metadata(plan: str | Path) -> dict:
    path = metadata_path(plan)
    if not path.is_file():
        raise user_error(f"no engine metadata {path.name} beside {plan}",
                         "engines come with their metadata: build them with 'onerec-trt build'")
    meta = read_json(path, "engine metadata")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise user_error(f"{path} is not onerec-trt engine metadata (format "
                         f"{meta.get('format') if isinstance(meta, dict) else None!r}, "
                         f"expected {FORMAT!r})")
    return meta


def write_engine(out: str | Path, name: str, plan: bytes, meta: dict) -> tuple[Path, Path]:
    """Write ``<name>.plan`` then ``<name>.json``, each atomically (a loader needs both)."""
    out = Path(out)
    plan_path = write_atomic(out / f"{name}.plan", lambda tmp: tmp.write_bytes(plan))
    return plan_path, write_json(out / f"{name}.json", meta)


def check_model(meta: dict, model_sha: str | None, what: str) -> None:
    recorded = meta.get("model_sha256")
    if model_sha and recorded and recorded != model_sha:
        raise user_error(f"{what} was built from another model (hash {recorded[:12]}, --model "
                         f"has {model_sha[:12]})", "export, quantize and build this model first")


def check_plan(meta: dict, data: bytes, what: str) -> None:
    """The metadata describes these plan bytes: same hash, same TensorRT version in the header."""
    try:
        header = plan_version(data)
    except ValueError as exc:
        raise user_error(f"{what} is not a TensorRT plan: {exc}") from None
    recorded = meta.get("plan_sha256")
    if recorded and recorded != sha256_bytes(data):
        raise user_error(f"{what} does not match its metadata (plan hash {sha256_bytes(data)[:12]}"
                         f", metadata says {recorded[:12]})", "rebuild it, or restore the pair")
    built = parse_version(meta["tensorrt"]["version"])
    if header is not None and header[:3] != built[:3]:
        raise user_error(f"{what}: the plan header says TensorRT {'.'.join(map(str, header))}, "
                         f"its metadata says {meta['tensorrt']['version']}")


def check_runtime(meta: dict, trt_version: str, gpu: GpuInfo | None, what: str) -> list[str]:
    """Refuse a plan this TensorRT or GPU cannot run (a UserError saying which); return notes
    about differences that do not stop it (another GPU model of the same compute capability).
    Our builder makes plans that are neither version- nor hardware-compatible, so the TensorRT
    version (major.minor.patch) and the compute capability must both match."""
    built = meta["tensorrt"]["version"]
    if parse_version(trt_version)[:3] != parse_version(built)[:3]:
        raise user_error(f"{what} was built with TensorRT {built}, this is TensorRT "
                         f"{trt_version}", "a plan runs only on the TensorRT version that built "
                                           "it: rebuild it here with 'onerec-trt build'")
    if gpu is None:
        raise user_error(f"{what} needs a CUDA GPU and none is visible")
    want = meta["gpu"]
    want_cc = tuple(want["compute_capability"])
    if gpu.compute_capability != want_cc:
        raise user_error(f"{what} was built for compute capability {want_cc[0]}.{want_cc[1]} "
                         f"({want['name']}), this GPU is {gpu.name} ({gpu.cc})",
                         "rebuild the engine on this GPU")
    if gpu.name != want["name"]:
        return [f"{what} was built on {want['name']}, this is {gpu.name} (same compute "
                f"capability {gpu.cc}): it runs, but its tactics were timed on the other GPU"]
    return []


def current_gpu(device: int = 0) -> GpuInfo | None:
    """The visible CUDA GPU, through torch (a core dependency); None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    return GpuInfo(torch.cuda.get_device_name(device),
                   tuple(torch.cuda.get_device_capability(device)))


def graph_provenance(onnx_path: str | Path) -> dict:
    """What the export/quantize stages recorded about a graph: the model hash, the export
    options (beam, topk, history length) and, for a Q/DQ graph, its calibration file."""
    path = Path(onnx_path)
    model_sha, export = None, {}
    for folder in (path.parent, path.parent.parent / "onnx"):
        for name in ("export.json", "manifest.json"):
            meta_path = folder / name
            if not meta_path.is_file():
                continue
            try:
                meta = json.loads(meta_path.read_text())
            except json.JSONDecodeError:
                continue
            if folder == path.parent:
                model_sha = model_sha or meta.get("model_sha256") or \
                    meta.get("inputs", {}).get("model") or None
            if name == "export.json" and not export:
                export = meta
    calibration = path.parent / "calibration.json"
    return {"model_sha256": model_sha, "export": export,
            "calibration": calibration if calibration.is_file() else None}


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

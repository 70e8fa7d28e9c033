"""Engine metadata: the ``<name>.json`` written beside each ``<name>.plan`` (format
``onerec-trt-engine/1``, docs/tensorrt.md), the plan header's version, and the checks a loader
runs before it hands a plan to TensorRT.

A plan is tied to the TensorRT version that built it and, by default, to the GPU's compute
capability (TENSORRT.md section 5); deserializing it elsewhere fails deep inside TensorRT. The
metadata says what the plan needs, so the loader can refuse it with a clear reason first.

``EngineMetadata.read`` is the one reader (the runtime, verify, the Triton repository and bench
all use it). What it relies on:

- ``profile``: the optimization profile of input ``history``: ``{"history": {"min": [1, S],
  "opt": [B, S], "max": [M, S]}}`` (shapes, as the build stage writes it) or batch sizes
  ``{"min": 1, "opt": B, "max": M}``; a list of profiles means profile 0.
- ``inputs`` / ``outputs``: a list of ``{"name", "dtype", "shape"}`` (or a dict ``name ->
  {"dtype", "shape"}``); shapes include the batch axis (-1 when dynamic); dtypes in any common
  spelling (TensorRT's ``INT64``/``FLOAT``/``BF16``, ``int64``, ``float32``).
- checked when present: ``plan_sha256`` (must hash the plan), ``model_sha256`` (must be the
  model's), ``precision``; the runtime needs ``tensorrt.version`` and ``gpu`` too; a plugin
  entry's ``ptx_arch`` (the compute capability its AOT kernels were compiled for, e.g. 90 =
  ``sm_90a`` PTX) must be the running GPU's.
Everything else is kept as written (``raw``), and copied verbatim into a Triton repository.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

from onerec_trt.artifacts import read_json, write_atomic, write_json
from onerec_trt.errors import user_error

FORMAT = "onerec-trt-engine/1"
PLAN_TAG = 0x74727466  # bytes "ftrt" read as a little-endian uint32
HEADER_BYTES = 28
PLAN_SUFFIX = ".plan"

# numpy-style dtype names, and the spellings metadata may use for them
DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32",
          "float64", "float8_e4m3fn")
_ALIASES = {"float": "float32", "fp32": "float32", "half": "float16", "fp16": "float16",
            "bf16": "bfloat16", "long": "int64", "int": "int32", "double": "float64",
            "fp64": "float64", "fp8": "float8_e4m3fn"}


def normalize_dtype(text: str) -> str:
    """'INT64', 'DataType.INT64', 'TYPE_INT64', 'torch.int64', 'tensor(int64)' -> 'int64'."""
    name = str(text).strip().lower()
    for prefix in ("datatype.", "dtype.", "torch.", "np.", "numpy.", "type_"):
        name = name.removeprefix(prefix)
    name = _ALIASES.get(name.removeprefix("tensor(").removesuffix(")"), name)
    name = _ALIASES.get(name, name)
    if name not in DTYPES:
        raise user_error(f"unknown tensor data type {text!r}",
                         f"expected one of: {', '.join(DTYPES)}")
    return name


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: tuple[int, int]

    @property
    def cc(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


@dataclass(frozen=True)
class EngineTensor:
    name: str
    dtype: str  # numpy-style name
    shape: tuple[int, ...]  # with the batch axis (-1: dynamic)


@dataclass
class EngineMetadata:
    """One engine's metadata, normalized; ``raw`` is the JSON as written."""

    plan: Path
    raw: dict
    inputs: dict[str, EngineTensor]
    outputs: dict[str, EngineTensor]
    min_batch: int
    opt_batch: int
    max_batch: int
    notes: list[str] = field(default_factory=list)

    @property
    def precision(self) -> str | None:
        return self.raw.get("precision")

    @property
    def model_sha256(self) -> str | None:
        return self.raw.get("model_sha256")

    @property
    def plugins(self) -> list:
        return self.raw.get("plugins") or []

    @property
    def plugin_archs(self) -> dict[str, int]:
        """Plugin name -> the compute capability its embedded PTX targets (where recorded)."""
        return {p["name"]: int(p["ptx_arch"]) for p in self.plugins
                if isinstance(p, dict) and p.get("ptx_arch") is not None}

    @property
    def tensorrt_version(self) -> str:
        version = (self.raw.get("tensorrt") or {}).get("version")
        if not version:
            raise user_error(f"{self.plan.with_suffix('.json')} does not record the TensorRT "
                             "version that built the plan",
                             "engines come with their metadata: build them with "
                             "'onerec-trt build'")
        return version

    @classmethod
    def read(cls, plan: str | Path) -> EngineMetadata:
        """Read ``plan``'s metadata (same stem, ``.json``); a user error if it is missing or
        does not describe an engine's profile and I/O."""
        plan = Path(plan)
        path = plan.with_suffix(".json")
        if not path.is_file():
            raise user_error(f"no engine metadata {path.name} beside {plan}",
                             "engines come with their metadata: build them with "
                             "'onerec-trt build'")
        raw = read_json(path, "engine metadata")
        if not isinstance(raw, dict):
            raise user_error(f"{path}: expected a JSON object")
        if "format" in raw and raw["format"] != FORMAT:
            raise user_error(f"{path} is not onerec-trt engine metadata (format "
                             f"{raw['format']!r}, expected {FORMAT!r})")
        lo, opt, hi = _profile(raw.get("profile"), str(path))
        return cls(plan, raw, _tensors(raw.get("inputs"), "inputs", str(path)),
                   _tensors(raw.get("outputs"), "outputs", str(path)), lo, opt, hi)

    @staticmethod
    def write(out: str | Path, name: str, plan: bytes, raw: dict) -> tuple[Path, Path]:
        """Write ``<name>.plan`` then ``<name>.json``, each atomically (a loader needs both)."""
        out = Path(out)
        plan_path = write_atomic(out / f"{name}{PLAN_SUFFIX}", lambda tmp: tmp.write_bytes(plan))
        return plan_path, write_json(out / f"{name}.json", raw)

    def summary(self) -> dict:
        keep = ("format", "precision", "tensorrt", "gpu", "plugins", "onnx", "model_sha256")
        return {"plan": self.plan.name, "profile": {"history": {
            "min": self.min_batch, "opt": self.opt_batch, "max": self.max_batch}},
            **{k: self.raw[k] for k in keep if k in self.raw}}

    def check_hash(self, data: bytes, what: str) -> None:
        """The metadata was written for these plan bytes (where it records their hash)."""
        recorded = self.raw.get("plan_sha256")
        if recorded and recorded != sha256_bytes(data):
            raise user_error(f"{what} does not match its metadata (plan hash "
                             f"{sha256_bytes(data)[:12]}, metadata says {recorded[:12]})",
                             "rebuild it, or restore the pair")

    def check_plan(self, data: bytes, what: str) -> None:
        """The metadata describes these plan bytes: same hash, same TensorRT version in the
        header."""
        try:
            header = plan_version(data)
        except ValueError as exc:
            raise user_error(f"{what} is not a TensorRT plan: {exc}") from None
        self.check_hash(data, what)
        version = (self.raw.get("tensorrt") or {}).get("version")
        if header is not None and version and header[:3] != parse_version(version)[:3]:
            raise user_error(f"{what}: the plan header says TensorRT "
                             f"{'.'.join(map(str, header))}, its metadata says {version}")

    def check_runtime(self, trt_version: str, gpu: GpuInfo | None, what: str) -> list[str]:
        """Refuse a plan this TensorRT or GPU cannot run (a UserError saying which); return
        notes about differences that do not stop it (another GPU model of the same compute
        capability). Our builder makes plans that are neither version- nor
        hardware-compatible, so the TensorRT version (major.minor.patch) and the compute
        capability must both match."""
        built = self.tensorrt_version
        if parse_version(trt_version)[:3] != parse_version(built)[:3]:
            raise user_error(f"{what} was built with TensorRT {built}, this is TensorRT "
                             f"{trt_version}", "a plan runs only on the TensorRT version that "
                                               "built it: rebuild it here with 'onerec-trt build'")
        if gpu is None:
            raise user_error(f"{what} needs a CUDA GPU and none is visible")
        want = self.raw.get("gpu") or {}
        want_cc = tuple(want.get("compute_capability") or ())
        if gpu.compute_capability != want_cc:
            shown = ".".join(map(str, want_cc)) or "unknown"
            raise user_error(f"{what} was built for compute capability {shown} "
                             f"({want.get('name')}), this GPU is {gpu.name} ({gpu.cc})",
                             "rebuild the engine on this GPU")
        have = 10 * gpu.compute_capability[0] + gpu.compute_capability[1]
        for name, arch in sorted(self.plugin_archs.items()):
            if arch != have:
                raise user_error(f"{what}: plugin {name}'s kernel was compiled for compute "
                                 f"capability {arch // 10}.{arch % 10}, this GPU is {gpu.name} "
                                 f"({gpu.cc}); that PTX does not load here",
                                 "rebuild the engine on this GPU")
        if gpu.name != want.get("name"):
            return [f"{what} was built on {want.get('name')}, this is {gpu.name} (same compute "
                    f"capability {gpu.cc}): it runs, but its tactics were timed on the other GPU"]
        return []


def _tensors(value, key: str, where: str) -> dict[str, EngineTensor]:
    if isinstance(value, dict):
        value = [{"name": k, **v} for k, v in value.items() if isinstance(v, dict)]
    if not isinstance(value, list) or not value:
        raise user_error(f"{where}: '{key}' must list the engine's tensors",
                         'expected [{"name": ..., "dtype": ..., "shape": [-1, ...]}, ...]')
    out = {}
    for item in value:
        try:
            shape = tuple(int(d) for d in item["shape"])
            out[item["name"]] = EngineTensor(item["name"], normalize_dtype(item["dtype"]), shape)
        except (KeyError, TypeError, ValueError) as exc:
            raise user_error(f"{where}: bad entry in '{key}': {item!r} ({exc})") from None
    return out


def _profile(value, where: str) -> tuple[int, int, int]:
    if isinstance(value, list):
        value = value[0] if value else None
    entry = value.get("history") if isinstance(value, dict) else None
    note = '{"history": {"min": [1, S], "opt": [B, S], "max": [M, S]}}'
    if not isinstance(entry, dict) or not all(k in entry for k in ("min", "opt", "max")):
        raise user_error(f"{where}: no optimization profile for input 'history'", note)
    try:
        lo, opt, hi = (int(entry[k][0] if isinstance(entry[k], list) else entry[k])
                       for k in ("min", "opt", "max"))
    except (TypeError, ValueError, IndexError):
        raise user_error(f"{where}: bad profile {entry!r}", note) from None
    if not 1 <= lo <= opt <= hi:
        raise user_error(f"{where}: profile batch sizes must satisfy 1 <= min <= opt <= max, "
                         f"got {lo}, {opt}, {hi}")
    return lo, opt, hi


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


def current_gpu(device: int = 0) -> GpuInfo | None:
    """The visible CUDA GPU, through torch (a core dependency); None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    return GpuInfo(torch.cuda.get_device_name(device),
                   tuple(torch.cuda.get_device_capability(device)))

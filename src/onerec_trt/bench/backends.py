"""Which backends can run here, from which files, and why the others cannot.

A backend is named ``<kind>[-plugins]-<precision>``: the kinds are the engines package's
(``torch``, ``ort``, ``trt``: the names verify uses too), ``-plugins`` the plugins stage's
graphs, the precision ``fp32``, ``bf16`` or ``fp8``. It is available only when its module
imports and its artifacts exist and belong to the model being benchmarked; otherwise it is
skipped with the reason (printed, and kept in bench.json). Nothing heavy is imported at module
level: the plugin and TensorRT modules are imported inside the checks.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path

from onerec_trt.errors import UserError, user_error
from onerec_trt.graphs import check_data_files
from onerec_trt.layout import (
    BF16_GRAPH,
    CPU_GRAPH,
    FP8_CPU_GRAPH,
    FP8_GRAPH,
    FP32_GRAPH,
    PLUGIN_GRAPHS,
)
from onerec_trt.provenance import check_same_model, recorded_model

NAMES = ("torch-fp32", "torch-bf16", "ort-fp32", "ort-bf16", "ort-fp8", "ort-plugins-bf16",
         "ort-plugins-fp8", "trt-bf16", "trt-fp8", "trt-plugins-bf16", "trt-plugins-fp8")

DESCRIPTIONS = {
    "torch-fp32": "torch generation loop, fp32 (CPU unless --device cuda)",
    "torch-bf16": "torch generation loop, bf16 weights and activations",
    "ort-fp32": "ONNX Runtime, reference.fp32.onnx: the model in fp32, what CPU serving runs",
    "ort-bf16": "ONNX Runtime, reference.cpu.onnx: the bf16 graph rendered as fp32 compute with "
                "bf16 rounding casts",
    "ort-fp8": "ONNX Runtime, fp8.cpu.onnx: FP8 Q/DQ simulated (quantize, dequantize, fp32 GEMM)",
    "ort-plugins-bf16": "ONNX Runtime with the beam-search plugin custom ops, bf16 rendering",
    "ort-plugins-fp8": "ONNX Runtime with the beam-search plugin custom ops, FP8 simulation",
    "trt-bf16": "TensorRT BF16 engine",
    "trt-fp8": "TensorRT FP8 engine",
    "trt-plugins-bf16": "TensorRT BF16 engine with the beam-search plugins",
    "trt-plugins-fp8": "TensorRT FP8 engine with the beam-search plugins",
}


@dataclass
class BackendSpec:
    name: str
    kind: str  # torch | ort | trt | hf (engines.runners.KINDS)
    precision: str  # fp32 | bf16 | fp8
    path: str | None = None  # the graph or engine (None: the model folder itself)
    max_batch: int | None = None  # an engine's optimization-profile limit
    description: str = ""

    @property
    def plugins(self) -> bool:
        return "-plugins-" in self.name

    @property
    def runner_spec(self) -> str:
        """What ``engines.runners.make_runner`` takes for this backend."""
        return self.path if self.path else f"torch:{self.precision}"

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Sources:
    """Where to look: the model and the folders the earlier stages wrote."""

    model: str
    model_sha: str | None
    onnx: Path
    fp8: Path
    plugins: Path
    engines: Path
    beam: int


def parse_names(names: list[str]) -> list[str]:
    """The requested backends in canonical order (empty: all); unknown names are a user error."""
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise user_error(f"unknown backend {unknown[0]!r}", f"known backends: {', '.join(NAMES)}")
    return [n for n in NAMES if not names or n in names]


def discover(names: list[str], src: Sources) -> tuple[list[BackendSpec], dict[str, str]]:
    """(available backends, {skipped backend: reason}) among ``names``."""
    checks = {"torch": _torch, "ort": _ort, "trt": _trt}
    found, skipped = [], {}
    for name in names:
        result = checks[name.split("-")[0]](name, src)
        if isinstance(result, str):
            skipped[name] = result
        else:
            result.description = DESCRIPTIONS[name]
            found.append(result)
    return found, skipped


def _precision(name: str) -> str:
    return name.rsplit("-", 1)[1]


def _torch(name: str, src: Sources) -> BackendSpec:
    return BackendSpec(name, "torch", _precision(name))


def _missing_module(module: str) -> str | None:
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    return None if found else f"{module} is not installed"


def check_graph(path: Path, src: Sources, stage: str) -> str | None:
    """Why the graph at ``path`` cannot be benchmarked for this model, or None."""
    from onerec_trt.export import find_report

    if not path.is_file():
        return f"{path} not found (run 'onerec-trt {stage}' first)"
    try:
        check_data_files(path)
        check_same_model(recorded_model(path), src.model_sha, str(path))
    except UserError as exc:
        return str(exc).splitlines()[0]
    export = find_report(path)
    if export is not None and export.beam != src.beam:
        return f"{path} was exported with beam {export.beam}, not --beam {src.beam} (re-export)"
    return None


def graph_path(name: str, src: Sources) -> tuple[Path, str]:
    """(the CPU graph a backend runs, the stage that writes it)."""
    if _precision(name) == "fp32":
        return src.onnx / FP32_GRAPH, "export"
    source = CPU_GRAPH if _precision(name) == "bf16" else FP8_CPU_GRAPH
    if "-plugins-" in name:
        return src.plugins / PLUGIN_GRAPHS[source], "plugins"
    return (src.onnx if source == CPU_GRAPH else src.fp8) / source, \
        "export" if source == CPU_GRAPH else "quantize"


def _ort(name: str, src: Sources) -> BackendSpec | str:
    modules = ["onnxruntime"] + (["onnxruntime_extensions"] if "-plugins-" in name else [])
    for module in modules:
        missing = _missing_module(module)
        if missing:
            return missing
    path, stage = graph_path(name, src)
    why = check_graph(path, src, stage)
    return why or BackendSpec(name, "ort", _precision(name), str(path))


def _trt(name: str, src: Sources) -> BackendSpec | str:
    from onerec_trt.backends.metadata import EngineMetadata

    if not src.engines.is_dir():
        return f"no engine folder {src.engines} (run 'onerec-trt build' on a GPU with TensorRT)"
    precision, with_plugins = _precision(name), "-plugins-" in name
    graph = (BF16_GRAPH if precision == "bf16" else FP8_GRAPH)
    for plan in sorted(src.engines.glob("*.plan")):
        try:
            meta = EngineMetadata.read(plan)
        except UserError:
            continue
        if meta.precision != precision:
            continue
        if bool(meta.plugins) != with_plugins:
            continue
        try:
            check_same_model(meta.model_sha256, src.model_sha, str(plan))
        except UserError as exc:
            return str(exc).splitlines()[0]
        try:
            importlib.import_module("onerec_trt.backends.tensorrt_lib").import_tensorrt()
        except Exception as exc:  # UserError: TensorRT missing; anything else: broken install
            return f"{plan} exists but TensorRT cannot load here: {str(exc).splitlines()[0]}"
        return BackendSpec(name, "trt", precision, str(plan), max_batch=meta.max_batch)
    kind = f"{precision}{' plugin' if with_plugins else ''}"
    return f"no {kind} engine (*.plan with metadata, built from {graph}) in {src.engines}"

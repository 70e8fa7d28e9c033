"""Which backends can run here, from which files, and why the others cannot.

A backend is available only when its module imports and its artifacts exist and belong to the
model being benchmarked; otherwise it is skipped with the reason (printed, and kept in
bench.json). Nothing heavy is imported at module level: the plugin and TensorRT modules are
imported inside the checks.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from onerec_trt.errors import user_error

NAMES = ("torch", "torch-bf16", "ort-bf16", "ort-fp8", "ort-plugins-bf16", "ort-plugins-fp8",
         "trt-bf16", "trt-fp8", "trt-plugins-bf16", "trt-plugins-fp8")

DESCRIPTIONS = {
    "torch": "torch reference beam search, fp32 (CPU unless --device cuda)",
    "torch-bf16": "torch reference beam search, bf16 weights and activations",
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
    kind: str  # torch | ort | ort-plugins | trt
    precision: str  # fp32 | bf16 | fp8
    path: str | None = None  # the graph or engine (None: the model folder itself)
    max_batch: int | None = None  # an engine's optimization-profile limit
    description: str = ""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Sources:
    """Where to look: the model and the folders the earlier stages wrote."""

    model: str
    model_sha: str | None
    onnx: Path
    fp8: Path
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
    checks = {"torch": _torch, "torch-bf16": _torch, "ort-bf16": _ort, "ort-fp8": _ort,
              "ort-plugins-bf16": _ort_plugins, "ort-plugins-fp8": _ort_plugins,
              "trt-bf16": _trt, "trt-fp8": _trt, "trt-plugins-bf16": _trt,
              "trt-plugins-fp8": _trt}
    found, skipped = [], {}
    for name in names:
        result = checks[name](name, src)
        if isinstance(result, str):
            skipped[name] = result
        else:
            result.description = DESCRIPTIONS[name]
            found.append(result)
    return found, skipped


def _torch(name: str, src: Sources) -> BackendSpec:
    return BackendSpec(name, "torch", "bf16" if name.endswith("bf16") else "fp32")


def _missing_module(module: str) -> str | None:
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    return None if found else f"{module} is not installed"


def _graph_meta(folder: Path) -> dict:
    """export.json of an export folder, or of the export folder a quantize folder came from."""
    if (folder / "export.json").is_file():
        return json.loads((folder / "export.json").read_text())
    manifest = folder / "manifest.json"
    if manifest.is_file():
        onnx_dir = json.loads(manifest.read_text()).get("options", {}).get("onnx")
        if onnx_dir and (Path(onnx_dir) / "export.json").is_file():
            return json.loads((Path(onnx_dir) / "export.json").read_text())
    return {}


def _recorded_model(folder: Path) -> str | None:
    meta = _graph_meta(folder) if (folder / "export.json").is_file() else {}
    if meta.get("model_sha256"):
        return meta["model_sha256"]
    manifest = folder / "manifest.json"
    if manifest.is_file():
        return json.loads(manifest.read_text()).get("inputs", {}).get("model") or None
    return None


def check_graph(path: Path, src: Sources, stage: str) -> str | None:
    """Why the graph at ``path`` cannot be benchmarked for this model, or None."""
    if not path.is_file():
        return f"{path} not found (run 'onerec-trt {stage}' first)"
    recorded = _recorded_model(path.parent)
    if src.model_sha and recorded and recorded != src.model_sha:
        return f"{path} was made from another model ({recorded[:12]}, --model has " \
               f"{src.model_sha[:12]})"
    beam = _graph_meta(path.parent).get("options", {}).get("beam")
    if beam is not None and beam != src.beam:
        return f"{path} was exported with beam {beam}, not --beam {src.beam} (re-export)"
    return None


def _ort(name: str, src: Sources) -> BackendSpec | str:
    missing = _missing_module("onnxruntime")
    if missing:
        return missing
    path = src.onnx / "reference.cpu.onnx" if name == "ort-bf16" else src.fp8 / "fp8.cpu.onnx"
    why = check_graph(path, src, "export" if name == "ort-bf16" else "quantize")
    return why or BackendSpec(name, "ort", name.rsplit("-", 1)[1], str(path))


def plugin_graph(name: str, src: Sources) -> Path:
    """The plugin swap's CPU graph beside the standard-op graph it came from."""
    return (src.onnx / "reference.plugins.cpu.onnx" if name.endswith("bf16")
            else src.fp8 / "fp8.plugins.cpu.onnx")


def _ort_plugins(name: str, src: Sources) -> BackendSpec | str:
    for module in ("onnxruntime", "onnxruntime_extensions", "onerec_trt.plugins.ort_ops"):
        missing = _missing_module(module)
        if missing:
            return f"{missing} (the plugin graphs' ONNX Runtime custom ops need it)"
    path = plugin_graph(name, src)
    why = check_graph(path, src, "plugins")
    return why or BackendSpec(name, "ort-plugins", name.rsplit("-", 1)[1], str(path))


def plugin_session(path: str, threads: int):
    """An ONNX Runtime session with the beam-search custom ops registered."""
    from onerec_trt.plugins.ort_ops import plugin_session as make

    return make(path, threads)


def _trt(name: str, src: Sources) -> BackendSpec | str:
    if not src.engines.is_dir():
        return f"no engine folder {src.engines} (run 'onerec-trt build' on a GPU with TensorRT)"
    precision = name.rsplit("-", 1)[1]
    with_plugins = "plugins" in name
    for plan in sorted(src.engines.glob("*.plan")):
        meta_path = plan.with_suffix(".json")
        if not meta_path.is_file():
            continue
        meta = json.loads(meta_path.read_text())
        if meta.get("precision") != ("fp8" if precision == "fp8" else "bfloat16") and \
                meta.get("precision") != precision:
            continue
        if bool(meta.get("plugins")) != with_plugins:
            continue
        if src.model_sha and meta.get("model_sha256") not in (None, src.model_sha):
            return f"{plan} was built from another model"
        try:
            importlib.import_module("onerec_trt.build.trt_builder").import_tensorrt()
        except Exception as exc:  # UserError: TensorRT missing; anything else: broken install
            return f"{plan} exists but TensorRT cannot load here: {str(exc).splitlines()[0]}"
        limit = meta.get("profile", {}).get("history", {}).get("max", [None])[0]
        return BackendSpec(name, "trt", precision, str(plan), max_batch=limit)
    kind = f"{precision}{' plugin' if with_plugins else ''}"
    return f"no {kind} engine (*.plan with metadata) in {src.engines}"


def trt_runner(path: str):
    """``run(history) -> (items, scores)`` on a TensorRT engine (``engines/tensorrt.py``), with the
    engine's device memory when TensorRT reports it."""
    from onerec_trt.engines.tensorrt import load

    engine = load(path, cuda_graphs=True, log=lambda *_: None)

    def run(history):
        out = engine.infer_numpy({"history": history})
        return out["items"], out["scores"]

    size = getattr(engine.engine, "device_memory_size_v2", None) or \
        getattr(engine.engine, "device_memory_size", None)
    return run, {"device": "cuda", "engine_device_memory": size, "notes": engine.notes}

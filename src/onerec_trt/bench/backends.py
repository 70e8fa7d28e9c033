"""Which backends can run here, from which files, and why the others cannot.

A backend is named ``<kind>[-plugins]-<precision>``: the kinds are the backends package's
(``torch``, ``ort``, ``trt``: the names verify uses too), ``-plugins`` the plugins stage's
graphs, the precision ``fp32``, ``bf16`` or ``fp8``. The names are a closed list (``CHOICES``,
each a ``Choice``), looked up, never taken apart. A backend is available only when its module
imports and its artifacts exist and belong to the model being benchmarked; otherwise it is
skipped with the reason (printed, and kept in bench.json). ``make_backend`` turns an available
one into the backend object (``onerec_trt.backends``) its worker runs. Nothing heavy is
imported at module level: the plugin and TensorRT modules are imported inside the checks.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Choice:
    """What a bench backend name stands for."""

    kind: str  # torch | ort | trt (backends.KINDS)
    precision: str  # fp32 | bf16 | fp8
    plugins: bool = False  # the plugins stage's graphs (ort) or a plugin engine (trt)

    @property
    def folder(self) -> str | None:
        """The stage folder its files come from (None: the model folder itself)."""
        if self.kind == "trt":
            return "engines"
        if self.kind == "ort":
            return "plugins" if self.plugins else "fp8" if self.precision == "fp8" else "onnx"
        return None


CHOICES = {
    "torch-fp32": Choice("torch", "fp32"), "torch-bf16": Choice("torch", "bf16"),
    "ort-fp32": Choice("ort", "fp32"), "ort-bf16": Choice("ort", "bf16"),
    "ort-fp8": Choice("ort", "fp8"), "ort-plugins-bf16": Choice("ort", "bf16", True),
    "ort-plugins-fp8": Choice("ort", "fp8", True), "trt-bf16": Choice("trt", "bf16"),
    "trt-fp8": Choice("trt", "fp8"), "trt-plugins-bf16": Choice("trt", "bf16", True),
    "trt-plugins-fp8": Choice("trt", "fp8", True)}
NAMES = tuple(CHOICES)

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
class Found:
    """A backend that can run here: its bench name and where its files are (bench.json's
    fields); ``make_backend`` makes the object."""

    name: str
    kind: str  # torch | ort | trt | hf (backends.KINDS)
    precision: str  # fp32 | bf16 | fp8
    path: str | None = None  # the graph or engine (None: the model folder itself)
    max_batch: int | None = None  # an engine's optimization-profile limit
    description: str = ""
    plugins: bool = field(default=False, repr=False)
    backend: object = field(default=None, repr=False)  # a Backend given as is (Python callers)

    @classmethod
    def given(cls, name: str, backend) -> Found:
        """A backend object a Python caller gave ``bench``, under ``name``."""
        return cls(name, backend.kind, backend.precision,
                   None if backend.path is None else str(backend.path),
                   max_batch=getattr(backend, "max_batch", None), description=repr(backend),
                   backend=backend)

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "precision": self.precision,
                "path": self.path, "max_batch": self.max_batch,
                "description": self.description}


def make_backend(found: Found, model: str, beam: int, topk: int, threads: int,
                 device: str = "cpu"):
    """The backend object a worker runs for ``found``: the serving settings (an engine with
    one CUDA graph per batch size; the oracle with one left-padded ``generate`` per request)."""
    from onerec_trt.backends import HfOracle, OrtBackend, TorchBackend, TrtBackend

    if found.kind == "torch":
        return TorchBackend(model, found.precision, beam=beam, topk=topk, device=device,
                            threads=threads)
    if found.kind == "hf":
        return HfOracle(model, beam=beam, topk=topk, batch=None, threads=threads)
    if found.kind == "ort":
        return OrtBackend(found.path, threads=threads, precision=found.precision)
    return TrtBackend(found.path, cuda_graphs=True)


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


def to_worker(backend) -> str:
    """A backend object as one line of text for its worker process (pickled unopened: bench
    starts the worker itself, so the pickle never comes from elsewhere)."""
    import base64
    import pickle

    return base64.b64encode(pickle.dumps(backend)).decode("ascii")


def from_parent(text: str):
    """The backend object ``to_worker`` sent."""
    import base64
    import pickle

    return pickle.loads(base64.b64decode(text))


def given_options(opts, given: dict):
    """``opts`` (``BenchOptions``) naming the backend objects ``given`` by name, with the beam
    and top-K their graphs were exported for where ``opts`` gives none."""
    from dataclasses import replace

    beams = {b.request for b in given.values() if all(b.request) and not b.takes_request}
    beam, topk = next(iter(beams)) if len(beams) == 1 else (None, None)
    return replace(opts, backends=list(given), beam=opts.beam or beam, topk=opts.topk or topk)


def requested(names: list[str]) -> list[str]:
    """The requested backends in canonical order (empty: all); unknown names are a user error."""
    unknown = [n for n in names if n not in CHOICES]
    if unknown:
        raise user_error(f"unknown backend {unknown[0]!r}", f"known backends: {', '.join(NAMES)}")
    return [n for n in NAMES if not names or n in names]


def discover(names: list[str], src: Sources) -> tuple[list[Found], dict[str, str]]:
    """(available backends, {skipped backend: reason}) among ``names``."""
    checks = {"torch": _torch, "ort": _ort, "trt": _trt}
    found, skipped = [], {}
    for name in names:
        result = checks[CHOICES[name].kind](name, src)
        if isinstance(result, str):
            skipped[name] = result
        else:
            result.description = DESCRIPTIONS[name]
            found.append(result)
    return found, skipped


def _torch(name: str, src: Sources) -> Found:
    return Found(name, "torch", CHOICES[name].precision)


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
    choice = CHOICES[name]
    if choice.precision == "fp32":
        return src.onnx / FP32_GRAPH, "export"
    source = CPU_GRAPH if choice.precision == "bf16" else FP8_CPU_GRAPH
    if choice.plugins:
        return src.plugins / PLUGIN_GRAPHS[source], "plugins"
    return (src.onnx if source == CPU_GRAPH else src.fp8) / source, \
        "export" if source == CPU_GRAPH else "quantize"


def _ort(name: str, src: Sources) -> Found | str:
    choice = CHOICES[name]
    modules = ["onnxruntime"] + (["onnxruntime_extensions"] if choice.plugins else [])
    for module in modules:
        missing = _missing_module(module)
        if missing:
            return missing
    path, stage = graph_path(name, src)
    why = check_graph(path, src, stage)
    return why or Found(name, "ort", choice.precision, str(path), plugins=choice.plugins)


def _trt(name: str, src: Sources) -> Found | str:
    from onerec_trt.backends.metadata import EngineMetadata

    if not src.engines.is_dir():
        return f"no engine folder {src.engines} (run 'onerec-trt build' on a GPU with TensorRT)"
    precision, with_plugins = CHOICES[name].precision, CHOICES[name].plugins
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
        return Found(name, "trt", precision, str(plan), max_batch=meta.max_batch,
                     plugins=with_plugins)
    kind = f"{precision}{' plugin' if with_plugins else ''}"
    return f"no {kind} engine (*.plan with metadata, built from {graph}) in {src.engines}"

"""One engine to build: the ONNX graph it comes from, what precision and plugins that graph
carries, its optimization profile and what the earlier stages recorded about it. Read from the
graph alone (no TensorRT), so ``--print-commands`` and the metadata share it with the builder."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from onerec_trt.artifacts import sha256_file
from onerec_trt.errors import user_error
from onerec_trt.export import find_report
from onerec_trt.graphs import check_data_files, declared_dims
from onerec_trt.layout import CALIBRATION_JSON, MANIFEST
from onerec_trt.lint import load_graph
from onerec_trt.lint.graph_index import type_name
from onerec_trt.lint.plugins import graph_plugins
from onerec_trt.provenance import recorded_model

QUANTIZED = {"FLOAT8E4M3FN": "fp8", "INT8": "int8", "INT4": "int4", "FLOAT4E2M1": "fp4"}


@dataclass(frozen=True)
class Batches:
    min: int = 1
    opt: int = 32
    max: int = 256

    def validate(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise user_error(f"batch sizes must satisfy 1 <= min <= opt <= max, got "
                             f"{self.min}/{self.opt}/{self.max}",
                             "--min-batch, --opt-batch and --max-batch set the user-batch axis")


@dataclass
class EngineJob:
    name: str  # <name>.plan / <name>.json
    onnx: Path
    onnx_sha256: str
    precision: str  # "fp8" when the graph quantizes to FP8, else its widest GEMM float type
    inputs: dict[str, tuple[list, str]]  # name -> (dims, ONNX type name); dims: int or str
    outputs: dict[str, tuple[list, str]]
    profile: dict[str, tuple[list[int], list[int], list[int]]]  # dynamic inputs: min/opt/max
    plugins: list[dict] = field(default_factory=list)
    model_sha256: str | None = None
    export: dict = field(default_factory=dict)
    calibration: Path | None = None


def _io(values, initializers: set[str]) -> dict[str, tuple[list, str]]:
    out = {}
    for vi in values:
        if vi.name in initializers:
            continue
        out[vi.name] = (declared_dims(vi), type_name(vi.type.tensor_type.elem_type) or "UNDEFINED")
    return out


def _profile(inputs: dict, batches: Batches, path: Path) -> dict:
    """The user-batch axis (the first) is the only dynamic one our graphs have."""
    profile = {}
    for name, (dims, _) in inputs.items():
        dynamic = [i for i, d in enumerate(dims) if not (isinstance(d, int) and d > 0)]
        if not dynamic:
            continue
        if dynamic != [0]:
            raise user_error(f"{path}: input '{name}' has dynamic axes {dynamic} {dims}",
                             "only the first (user-batch) axis may be dynamic; export with a "
                             "fixed history length")
        rest = list(dims[1:])
        profile[name] = ([batches.min, *rest], [batches.opt, *rest], [batches.max, *rest])
    return profile


def _precision(model: onnx.ModelProto) -> str:
    types = {type_name(t.data_type) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "TRT_FP8QuantizeLinear"):
            for attr in node.attribute:
                if attr.name == "output_dtype":
                    types.add(type_name(attr.i))
    for name, precision in QUANTIZED.items():
        if name in types or (precision == "fp8" and any(
                n.op_type.startswith("TRT_FP8") for n in model.graph.node)):
            return precision
    for name, precision in (("BFLOAT16", "bf16"), ("FLOAT16", "fp16")):
        if name in types or any(_constant_type(n) == name for n in model.graph.node):
            return precision
    return "fp32"


def _constant_type(node: onnx.NodeProto) -> str | None:
    if node.op_type != "Constant":
        return None
    for attr in node.attribute:
        if attr.name == "value":
            return type_name(attr.t.data_type)
    return None


def engine_job(path: str | Path, batches: Batches, calibration: str | None = None) -> EngineJob:
    path = Path(path)
    model = load_graph(path)
    check_data_files(path)  # TensorRT's parser reads them from beside the graph
    g = model.graph
    initializers = {i.name for i in g.initializer}
    inputs, outputs = _io(g.input, initializers), _io(g.output, set())
    calib = Path(calibration) if calibration else _calibration_of(path)
    if calibration and not calib.is_file():
        raise user_error(f"calibration file not found: {calib}")
    precision = _precision(model)
    return EngineJob(
        name=path.name.removesuffix(".onnx"), onnx=path, onnx_sha256=sha256_file(path),
        precision=precision, inputs=inputs, outputs=outputs,
        profile=_profile(inputs, batches, path), plugins=graph_plugins(model),
        model_sha256=recorded_model(path), export=_export_of(path),
        calibration=calib if precision in QUANTIZED.values() else None)


def _export_of(path: Path) -> dict:
    report = find_report(path)
    return report.to_json() if report else {}


def _calibration_of(path: Path) -> Path | None:
    """The calibration file of a Q/DQ graph: beside it, or in the quantize folder a plugins
    folder's manifest names."""
    folders = [path.parent]
    try:
        options = json.loads((path.parent / MANIFEST).read_text()).get("options", {})
        folders += [Path(options[k]) for k in ("fp8",) if options.get(k)]
    except (OSError, json.JSONDecodeError, AttributeError):
        pass
    return next((f / CALIBRATION_JSON for f in folders if (f / CALIBRATION_JSON).is_file()),
                None)

"""TensorRT's documented ONNX operator support, kept as data in ``trt_ops.json``.

The JSON file holds the table itself (with its source and the TensorRT version it describes)
and the few rules the lint derives from its restrictions; this module only reads it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

TABLE_PATH = Path(__file__).with_name("trt_ops.json")


@dataclass(frozen=True)
class OpSupport:
    name: str
    supported: bool
    types: frozenset[str]  # ONNX element type names, e.g. "BFLOAT16"
    restrictions: str = ""
    max_k: int | None = None  # TopK only


@dataclass(frozen=True)
class OpTable:
    tensorrt_version: str
    source: str
    opset_min: int
    opset_max: int
    ops: dict[str, OpSupport]
    known_types: frozenset[str]  # every element type TensorRT has
    quantized_types: frozenset[str]  # reachable only through Q/DQ
    io_only_types: frozenset[str]
    cast_down_types: frozenset[str]
    type_input: dict[str, list]
    attribute_rules: list[dict]
    max_outputs: dict[str, int]
    constant_inputs: dict[str, list[int]]
    quantization: dict
    custom_domains: dict[str, dict] = field(default_factory=dict)

    def support(self, op_type: str) -> OpSupport | None:
        return self.ops.get(op_type)


def _public(d: dict) -> dict:
    return {k: v for k, v in d.items() if not k.startswith("_")}


@functools.cache
def load_table(path: str | Path = TABLE_PATH) -> OpTable:
    if not Path(path).is_file():  # an install bug, not a user mistake
        raise RuntimeError(f"{path} is missing: onerec_trt was installed without its package "
                           "data (pyproject's package-data must list lint/trt_ops.json)")
    raw = json.loads(Path(path).read_text())
    names = raw["type_names"]

    def onnx_types(trt_names) -> frozenset[str]:
        return frozenset(names[t] for t in trt_names)

    ops = {}
    for name, entry in raw["ops"].items():
        ops[name] = OpSupport(name, entry.get("supported", True),
                              onnx_types(entry.get("types", [])), entry.get("restrictions", ""))
    for name in raw["unsupported"]:
        ops.setdefault(name, OpSupport(name, False, frozenset()))
    for name, fix in raw.get("corrections", {}).items():
        old = ops[name]
        ops[name] = OpSupport(name, old.supported,
                              onnx_types(fix["types"]) if "types" in fix else old.types,
                              old.restrictions, fix.get("max_k", old.max_k))
    return OpTable(
        tensorrt_version=raw["tensorrt_version"],
        source=raw["source"]["table"],
        opset_min=raw["opset"]["min"],
        opset_max=raw["opset"]["max"],
        ops=ops,
        known_types=frozenset(names.values()),
        quantized_types=onnx_types(raw["quantized_types"]),
        io_only_types=onnx_types(raw["io_only_types"]),
        cast_down_types=onnx_types(raw["cast_down_types"]),
        type_input=_public(raw["type_input"]),
        attribute_rules=raw["attribute_rules"],
        max_outputs=_public(raw["max_outputs"]),
        constant_inputs=_public(raw["constant_inputs"]),
        quantization=raw["quantization"],
        custom_domains=_public(raw["custom_domains"]),
    )

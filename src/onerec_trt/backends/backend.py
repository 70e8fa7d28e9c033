"""``Backend``: a Polygraphy runner and what the stages need to know about it. Every kind's
builder returns one (``runners.make_runner``, ``tensorrt.engine_backend``); this module
imports none of them."""

from __future__ import annotations

from dataclasses import dataclass

from onerec_trt.artifacts import package_versions
from onerec_trt.export import ExportReport

KINDS = ("torch", "ort", "trt", "hf")


@dataclass
class Backend:
    """A Polygraphy runner and what the stages need to know about it."""

    runner: object  # polygraphy BaseRunner
    kind: str  # one of KINDS
    spec: str  # what the user named: torch:bf16, FILE.onnx, FILE.plan
    inputs: list[str]
    outputs: list[str]
    export: ExportReport | None = None  # the export that made the graph or engine

    def describe(self) -> dict:
        versions = package_versions()
        backend = {"ort": f"onnxruntime {versions.get('onnxruntime')} CPUExecutionProvider",
                   "torch": f"torch {versions.get('torch')} (the generation loop)",
                   "trt": "tensorrt",
                   "hf": f"transformers {_version('transformers')} generate (fp32, CPU)"}[self.kind]
        return {"spec": self.spec, "kind": self.kind, "runner": self.runner.name,
                "backend": backend, "polygraphy": versions.get("polygraphy")}


def _version(name: str) -> str | None:
    import importlib.metadata as md

    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None

"""Turn a ``--reference`` / ``--candidate`` argument into a Polygraphy runner, with checks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from onerec_trt.artifacts import MANIFEST, package_versions
from onerec_trt.errors import user_error

TORCH_SPECS = {"torch": "fp32", "torch:fp32": "fp32", "torch:bf16": "bf16"}


@dataclass
class VerifyRunner:
    runner: object
    kind: str
    spec: str
    inputs: list[str]
    outputs: list[str]
    export: dict = field(default_factory=dict)

    def describe(self) -> dict:
        versions = package_versions()
        backend = {"onnx": f"onnxruntime {versions.get('onnxruntime')} CPUExecutionProvider",
                   "torch": f"torch {versions.get('torch')} cpu (reference beam search)",
                   "tensorrt": "tensorrt"}[self.kind]
        return {"spec": self.spec, "runner": self.runner.name, "backend": backend,
                "polygraphy": versions.get("polygraphy")}


def _graph_model_hash(path: Path) -> str | None:
    """The model hash recorded by the export or quantize stage that wrote this graph."""
    for name in ("export.json", MANIFEST):
        meta_path = path.parent / name
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            found = meta.get("model_sha256") or meta.get("inputs", {}).get("model")
            if found:
                return found
    return None


def _export_meta(path: Path) -> dict:
    for folder in (path.parent, path.parent.parent / "onnx"):
        meta = folder / "export.json"
        if meta.is_file():
            return json.loads(meta.read_text())
    return {}


def _onnx_runner(spec: str, role: str, model_sha: str | None) -> VerifyRunner:
    import onnx
    from polygraphy.backend.onnxrt import OnnxrtRunner

    from onerec_trt.engines.onnxrt import make_session

    path = Path(spec)
    if not path.is_file():
        raise user_error(f"{role} graph not found: {path}")
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:
        raise user_error(f"{role} {path} is not an ONNX model: {exc}") from None
    recorded = _graph_model_hash(path)
    if model_sha and recorded and recorded != model_sha:
        raise user_error(f"{role} {path} was made from another model (hash {recorded[:12]}, "
                         f"--model has {model_sha[:12]})", "export and quantize this model first")
    initializers = {i.name for i in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initializers]
    return VerifyRunner(OnnxrtRunner(lambda: make_session(path), name=f"{role}:{path.name}"),
                        "onnx", spec, inputs, [o.name for o in graph.output], _export_meta(path))


def make_runner(spec: str, role: str, model_sha: str | None, model: str,
                like: VerifyRunner | None = None) -> VerifyRunner:
    if spec in TORCH_SPECS:
        if like is None or not like.export:
            raise user_error(f"--{role} {spec} needs an exported reference graph (for beam/topk)")
        from onerec_trt.engines.torch_runner import TorchGenerationRunner

        opts = like.export["options"]
        runner = TorchGenerationRunner(model, opts["beam"], opts["topk"], TORCH_SPECS[spec],
                                       name=f"{role}:{spec}")
        made = VerifyRunner(runner, "torch", spec, ["history"], ["items", "scores", "codes"])
    elif spec.endswith(".plan"):
        from onerec_trt.engines.tensorrt import engine_runner

        made = engine_runner(spec, role, model_sha)
    elif spec.endswith(".onnx"):
        made = _onnx_runner(spec, role, model_sha)
    else:
        raise user_error(f"--{role} {spec!r} is not a graph, an engine or a torch runner",
                         "expected FILE.onnx, FILE.plan, torch, torch:fp32 or torch:bf16")
    if like is not None and (made.inputs != like.inputs or
                             sorted(made.outputs) != sorted(like.outputs)):
        raise user_error(f"the candidate's inputs/outputs {made.inputs}/{made.outputs} differ "
                         f"from the reference's {like.inputs}/{like.outputs}",
                         "compare graphs exported from the same model and options")
    return made

"""Every runner behind one function: ``make_runner(spec, ...)`` turns a ``--reference`` /
``--candidate`` argument (verify) or a backend (bench) into a Polygraphy runner, with checks.

The backends, by kind (the names verify and bench share; docs/architecture.md's glossary):

- ``torch``: the torch generation loop of a model folder, fp32 or bf16 (``torch``,
  ``torch:fp32``, ``torch:bf16``);
- ``ort``: ONNX Runtime's CPU provider on a graph (``FILE.onnx``; plugin-bearing graphs get
  their custom ops registered);
- ``trt``: a TensorRT plan (``FILE.plan``; TensorRT and a GPU needed);
- ``hf``: transformers' own ``generate`` with the catalogue trie as ``prefix_allowed_tokens_fn``
  (``hf``; imported models only): the oracle written outside this project.
"""

from __future__ import annotations

from pathlib import Path

from onerec_trt.backends.backend import KINDS, Backend
from onerec_trt.errors import user_error
from onerec_trt.export import find_report
from onerec_trt.provenance import check_same_model, recorded_model

TORCH_SPECS = {"torch": "fp32", "torch:fp32": "fp32", "torch:bf16": "bf16"}

__all__ = ["Backend", "KINDS", "TORCH_SPECS", "make_runner"]


def _onnx_backend(spec: str, role: str, model_sha: str | None, threads: int | None) -> Backend:
    import onnx
    from polygraphy.backend.onnxrt import OnnxrtRunner

    from onerec_trt.graphs import check_data_files, make_session

    path = Path(spec)
    if not path.is_file():
        raise user_error(f"{role} graph not found: {path}")
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:
        raise user_error(f"{role} {path} is not an ONNX model: {exc}") from None
    check_same_model(recorded_model(path), model_sha, f"{role} {path}")
    check_data_files(path)
    initializers = {i.name for i in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initializers]
    runner = OnnxrtRunner(lambda: make_session(path, threads), name=f"{role}:{path.name}")
    return Backend(runner, "ort", spec, inputs, [o.name for o in graph.output],
                   find_report(path))


def _torch_backend(spec: str, role: str, model: str, beam: int, topk: int,
                   device: str) -> Backend:
    from onerec_trt.backends.torch_runner import TorchGenerationRunner

    runner = TorchGenerationRunner(model, beam, topk, TORCH_SPECS[spec], device=device,
                                   name=f"{role}:{spec}")
    return Backend(runner, "torch", spec, ["history"], ["items", "scores", "codes"])


def _hf_backend(role: str, model: str, beam: int, topk: int) -> Backend:
    from onerec_trt.backends.hf_runner import TransformersGenerateRunner

    runner = TransformersGenerateRunner(model, beam, topk, name=f"{role}:hf")
    return Backend(runner, "hf", "hf", ["history"], ["items", "scores", "codes"])


def make_runner(spec: str, role: str, model: str = "default", model_sha: str | None = None,
                like: Backend | None = None, beam: int | None = None, topk: int | None = None,
                device: str = "cpu", threads: int | None = None) -> Backend:
    """The backend ``spec`` names. A torch backend runs the request the graphs were exported
    for (``like``'s export: beam and top-K) unless ``beam``/``topk`` are given."""
    if spec in TORCH_SPECS or spec == "hf":
        export = like.export if like is not None else None
        beam = beam or (export.beam if export else None)
        topk = topk or (export.topk if export else None)
        if not beam or not topk:
            raise user_error(f"--{role} {spec} needs an exported reference graph (for beam/topk)")
        made = _hf_backend(role, model, beam, topk) if spec == "hf" else \
            _torch_backend(spec, role, model, beam, topk, device)
    elif spec.endswith(".plan"):
        from onerec_trt.backends.tensorrt import engine_backend

        made = engine_backend(spec, role, model_sha)
    elif spec.endswith(".onnx"):
        made = _onnx_backend(spec, role, model_sha, threads)
    else:
        raise user_error(f"--{role} {spec!r} is not a graph, an engine or a torch runner",
                         "expected FILE.onnx, FILE.plan, torch, torch:fp32, torch:bf16 or hf")
    if like is not None and (made.inputs != like.inputs or
                             sorted(made.outputs) != sorted(like.outputs)):
        raise user_error(f"the candidate's inputs/outputs {made.inputs}/{made.outputs} differ "
                         f"from the reference's {like.inputs}/{like.outputs}",
                         "compare graphs exported from the same model and options")
    return made

"""Inside a bench worker: turn a backend description into ``run(history) -> (items, scores)``.

Every backend is a runner of ``engines.runners.make_runner`` (the runners verify uses),
activated once; each worker imports only what its backend needs, so its memory is that
backend's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Run = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def make_run(spec: dict) -> tuple[Run, dict]:
    """(run, info) for ``spec`` (a ``BackendSpec.to_json()`` plus the request's settings)."""
    from onerec_trt.backends.runners import make_runner

    kind = spec["kind"]
    if kind in ("torch", "hf"):
        import torch

        torch.set_num_threads(spec["threads"])
    runner_spec = "hf" if kind == "hf" else spec["path"] or f"torch:{spec['precision']}"
    backend = make_runner(runner_spec, "bench", spec.get("model", "default"), beam=spec["beam"],
                          topk=spec["topk"], device=spec.get("device", "cpu"),
                          threads=spec["threads"])
    runner = backend.runner
    if kind == "trt":
        runner.cuda_graphs = True  # one CUDA graph per batch size: the serving setting
    if kind == "hf":
        runner.batch = None  # a request is one generate call, left-padded: how users batch
    runner.activate()

    def run(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = runner.infer({"history": history})
        return np.asarray(out["items"]), np.asarray(out["scores"])

    return run, _info(kind, runner, spec)


def _info(kind: str, runner, spec: dict) -> dict:
    if kind == "hf":
        import torch
        import transformers

        return {"transformers": transformers.__version__, "torch": torch.__version__,
                "device": "cpu", "threads": torch.get_num_threads()}
    if kind == "torch":
        import torch

        return {"torch": torch.__version__, "device": str(runner.device),
                "threads": torch.get_num_threads()}
    if kind == "ort":
        import onnxruntime as ort

        return {"onnxruntime": ort.__version__, "providers": runner.sess.get_providers(),
                "threads": spec["threads"]}
    engine = runner.engine.engine
    size = getattr(engine, "device_memory_size_v2", None) or \
        getattr(engine, "device_memory_size", None)
    return {"device": "cuda", "engine_device_memory": size, "notes": runner.engine.notes}

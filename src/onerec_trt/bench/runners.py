"""Inside a bench worker: turn a backend description into ``run(history) -> (items, scores)``.

Each factory imports only what its backend needs, so a worker's memory is that backend's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Run = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def make_run(spec: dict) -> tuple[Run, dict]:
    """(run, info) for ``spec`` (a ``BackendSpec.to_json()`` plus the request's settings)."""
    kind = spec["kind"]
    if kind == "torch":
        return _torch_run(spec)
    if kind == "ort":
        return _ort_run(spec)
    if kind == "ort-plugins":
        return _ort_plugins_run(spec)
    if kind == "trt":
        return _trt_run(spec)
    raise ValueError(f"unknown backend kind {kind!r}")


def _torch_run(spec: dict) -> tuple[Run, dict]:
    import torch

    from onerec_trt.model.folder import load_model
    from onerec_trt.model.generate import Generator, beam_search

    torch.set_num_threads(spec["threads"])
    device = torch.device(spec.get("device", "cpu"))
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[spec["precision"]]
    bundle = load_model(spec["model"])
    model = bundle.model.to(device=device, dtype=dtype)
    beam, topk = spec["beam"], spec["topk"]
    generator = Generator(model, beam, topk).to(device)

    def run(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        recs = beam_search(model, torch.from_numpy(history).to(device), beam, topk,
                           generator=generator)
        return recs.items, recs.scores

    return run, {"torch": torch.__version__, "device": str(device),
                 "threads": torch.get_num_threads()}


def _ort_run(spec: dict, session=None) -> tuple[Run, dict]:
    import onnxruntime as ort

    from onerec_trt.engines.onnxrt import make_session

    sess = session or make_session(spec["path"], threads=spec["threads"])
    names = [o.name for o in sess.get_outputs()]
    items, scores = names.index("items"), names.index("scores")

    def run(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = sess.run(None, {"history": history})
        return out[items], out[scores]

    return run, {"onnxruntime": ort.__version__, "providers": sess.get_providers(),
                 "threads": spec["threads"]}


def _ort_plugins_run(spec: dict) -> tuple[Run, dict]:
    from onerec_trt.bench.backends import plugin_session

    return _ort_run(spec, plugin_session(spec["path"], spec["threads"]))


def _trt_run(spec: dict) -> tuple[Run, dict]:
    from onerec_trt.bench.backends import trt_runner

    return trt_runner(spec["path"])

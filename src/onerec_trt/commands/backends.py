"""The one place backend strings become backend objects (``onerec_trt.backends``).

verify's ``--reference`` / ``--candidate``: ``FILE.onnx`` (``OrtBackend``), ``FILE.plan``
(``TrtBackend``), ``torch``, ``torch:fp32``, ``torch:bf16`` (``TorchBackend``) or ``hf``
(``HfOracle``). From Python, make the objects directly, or build them from the strings of a
``VerifyOptions`` with ``verify_backends(opts)``: ``verify(opts, *verify_backends(opts))``.

bench's ``--backends`` names (``ort-fp8``, ``trt-plugins-fp8``, ...) are no grammar: they are
the keys of bench's closed table (``bench/backends.py: CHOICES``), each a kind, a precision and
whether the plugin graphs run; bench finds the files and makes the objects.
"""

from __future__ import annotations

from onerec_trt.backends import Backend, HfOracle, OrtBackend, TorchBackend, TrtBackend
from onerec_trt.errors import user_error

TORCH_SPECS = {"torch": "fp32", "torch:fp32": "fp32", "torch:bf16": "bf16"}
VERIFY_SPECS = "FILE.onnx, FILE.plan, torch, torch:fp32, torch:bf16 or hf"


def backend_from_spec(spec: str, role: str = "candidate", model: str = "default",
                      model_sha: str | None = None) -> Backend:
    """The backend a ``--reference`` / ``--candidate`` argument names, with its checks (a
    graph or plan of another model than ``model_sha``'s is refused). The torch loop and the
    oracle take their beam and top-K from the reference graph (verify sets them)."""
    if spec in TORCH_SPECS:
        return TorchBackend(model, TORCH_SPECS[spec], name=spec)
    if spec == "hf":
        return HfOracle(model)
    if spec.endswith(".plan"):
        return TrtBackend(spec, model_sha=model_sha, role=role)
    if spec.endswith(".onnx"):
        return OrtBackend(spec, model_sha=model_sha, role=role)
    raise user_error(f"--{role} {spec!r} is not a graph, an engine, the torch loop or the hf "
                     "oracle",
                     f"expected {VERIFY_SPECS}")


def verify_backends(opts) -> tuple[Backend, Backend]:
    """(reference, candidate) named by a ``VerifyOptions``' strings: what ``onerec-trt verify``
    passes to ``verify(opts, reference, candidate)``."""
    from onerec_trt.model.checkpoint import model_hash

    sha = model_hash(opts.model)
    return (backend_from_spec(opts.reference, "reference", opts.model, sha),
            backend_from_spec(opts.candidate, "candidate", opts.model, sha))


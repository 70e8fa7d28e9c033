"""ONNX Runtime sessions for our graphs (CPU provider here; CUDA where the GPU build has one)."""

from __future__ import annotations

from pathlib import Path

from onerec_trt.errors import user_error


def session_options(threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # ORT's CPU QDQ fusion turns FP8 DequantizeLinear -> MatMul into MatMulIntegerToFloat, which
    # has no FP8 kernel (FACTS); the FP8 graph runs exactly with that fusion off.
    opts.add_session_config_entry("session.disable_quant_qdq", "1")
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    return opts


def make_session(path: str | Path, threads: int | None = None, providers=None):
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise user_error(f"ONNX graph not found: {path}")
    providers = providers or ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), session_options(threads), providers=providers)
    except Exception as exc:  # ORT raises its own exception types for bad graphs
        raise user_error(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}") from None

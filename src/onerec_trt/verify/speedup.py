"""The candidate's predicted speed-up over bf16, as the quantize run that wrote its graph
recorded it (``quantize_report.json``: ``quantize/speedup.py``): a roofline prediction for its
FP8 policy, never a measurement, shown beside the accuracy it costs."""

from __future__ import annotations

import json
from pathlib import Path

from onerec_trt.layout import QUANTIZE_REPORT


def _quantize_folder(backend) -> Path | None:
    """Where the candidate's graph came from: beside an ONNX graph; for an engine, beside the
    graph its metadata names."""
    if backend.kind == "ort" and backend.path is not None:
        return Path(backend.path).parent
    if backend.kind == "trt":
        onnx = (backend.meta.raw.get("onnx") or {}).get("path")
        return Path(onnx).parent if onnx else None
    return None


def candidate_speedup(backend) -> dict:
    """``quantize_report.json``'s ``predicted_speedup`` and FP8 share, with the file it came
    from; ``{}`` where the candidate has none (a bf16 graph, a torch loop, an older report)."""
    folder = _quantize_folder(backend)
    path = folder / QUANTIZE_REPORT if folder is not None else None
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    record = data.get("predicted_speedup") if isinstance(data, dict) else None
    if not isinstance(record, dict) or not record.get("over_bf16"):
        return {}
    return {**record, "fp8_flop_share": data.get("fp8_flop_share"), "source": str(path)}

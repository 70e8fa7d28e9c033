"""The predicted speed-up of an FP8 policy over bf16 on H100 and H200: a roofline prediction,
never a measurement.

This project's models: the analysis roofline (``roofline.py``: every op of one request, the
policy's bf16 layers priced in bf16; the model behind the analyze stage's "predicted FP8
speed-up"). Imported models have no analytic op list: Amdahl over the counted GEMM FLOPs (the
FP8 GEMMs at the FP8/BF16 tensor-core peak ratio, the bf16 GEMMs unchanged, all compute-bound;
attention, norms and memory traffic not counted): an upper bound on the GEMMs' speed-up.
"""

from __future__ import annotations

from collections.abc import Iterable

from onerec_trt.quantize.flops import RequestFlops
from onerec_trt.roofline import load_gpus, predict

LABEL = "predicted (roofline), not measured"
GPUS = ("H100-SXM", "H200")  # keys of gpus.json


def speedup_basis(flops: RequestFlops) -> str:
    if flops.ops_for is not None:
        return ("analysis roofline (roofline.py: max(FLOPs / peak, bytes / bandwidth) per op) "
                "over every op of the request the FP8 share counts")
    return ("Amdahl over counted nn.Linear FLOPs: FP8 GEMMs at the FP8/BF16 peak ratio, "
            "compute-bound; attention and memory traffic not counted (an upper bound)")


def predicted_speedup(flops: RequestFlops, bf16_layers: Iterable[str]) -> dict[str, float]:
    """GPU -> predicted bf16 time / FP8 time of a request with ``bf16_layers`` kept in bf16."""
    kept = frozenset(bf16_layers)
    gpus = load_gpus(list(GPUS))
    if flops.ops_for is not None:
        ops = flops.ops_for(kept)
        return {name: predict(ops, gpu)["predicted_speedup"] for name, gpu in gpus.items()}
    share = flops.fp8_share(kept)
    return {name: 1.0 / ((1.0 - share) + share * gpu["bf16_tflops"] / gpu["fp8_tflops"])
            for name, gpu in gpus.items()}


def speedup_record(flops: RequestFlops, bf16_layers: Iterable[str]) -> dict:
    """The report's ``predicted_speedup``: per GPU, with its basis and label."""
    return {"over_bf16": predicted_speedup(flops, bf16_layers), "basis": speedup_basis(flops),
            "label": LABEL}


def speedup_text(values: dict[str, float]) -> str:
    """'1.23x on H100-SXM, 1.31x on H200'"""
    return ", ".join(f"{v:.2f}x on {k}" for k, v in values.items())

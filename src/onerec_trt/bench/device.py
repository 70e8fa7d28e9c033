"""The device evidence without TensorRT (``scripts/device_bench.py``): real FP8 GEMMs against
bf16 GEMMs at a request's GEMM shapes, end-to-end generation in bf16 and with FP8 linears,
each next to the roofline prediction (``roofline.py``). Imports torch and numpy only (and the
roofline module by file when the package's imports are not available)."""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from onerec_trt.bench.gpu_gemm import load_scales, request_gemms, request_totals, time_shape
from onerec_trt.model.config import ModelConfig

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent.parent  # roofline.py and gpus.json


@dataclass
class DeviceOptions:
    device: str = "cuda"
    presets: dict[str, dict] = field(default_factory=lambda: {
        "small": {"beam": 20, "users": [1, 8, 64, 256, 1024]},
        "paper": {"beam": 512, "users": [1, 4, 16, 64, 128]}})
    calibration: str | None = None  # calibration.json of the small model's quantize run
    gemm_iters: int = 20
    gemm_reps: int = 5
    e2e_preset: str | None = "paper"
    e2e_config: dict = field(default_factory=dict)  # overrides of the preset (dry runs)
    e2e_beam: int = 512
    e2e_users: list[int] = field(default_factory=lambda: [1, 4, 16, 64])
    e2e_reps: int = 10
    e2e_topk: int = 10
    cuda_graphs: bool = True
    beam_step: str = "auto"  # auto | plugin | torch
    gpu_table: str | None = None  # gpus.json key for the roofline (None: match the device)
    budget_s: float = 400.0
    seed: int = 0


class Budget:
    def __init__(self, seconds: float):
        self.start, self.seconds = time.perf_counter(), seconds

    def used(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.used()


def load_roofline():
    """The roofline module: imported normally, else by file path (the package may import what
    the device machine lacks); None if neither works."""
    try:
        from onerec_trt import roofline

        return roofline
    except Exception:
        pass
    try:
        spec = importlib.util.spec_from_file_location("onerec_roofline", PACKAGE / "roofline.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except Exception:
        return None


def gpu_entry(roofline, name: str | None, device_name: str | None) -> tuple[str | None, dict]:
    """(key, entry) of gpus.json for ``name`` or the device (H200 when neither matches)."""
    table = json.loads((PACKAGE / "gpus.json").read_text())["gpus"]
    if name:
        return name, table[name]
    for key, entry in table.items():
        if device_name and key.split("-")[0].lower() in device_name.lower():
            return key, entry
    return "H200", table["H200"]


def _predict_gemm(roofline, gpu: dict, shape) -> dict:
    """Roofline microseconds of one GEMM in bf16 and FP8 (the analyze stage's formulas)."""
    if roofline is not None:
        op = roofline.gemm(shape.name, shape.m, shape.k, shape.n, shape.layer)
        return {p: roofline.op_time(op, gpu, p)[0] * 1e6 for p in ("bf16", "fp8")}
    flops = 2.0 * shape.m * shape.k * shape.n  # fallback: same formulas, derived here
    b16 = 2 * (shape.m * shape.k + shape.k * shape.n + shape.m * shape.n)
    b8 = shape.m * shape.k + shape.k * shape.n + 2 * shape.m * shape.n
    bw = gpu["memory_tbs"] * 1e12
    return {"bf16": max(flops / (gpu["bf16_tflops"] * 1e12), b16 / bw) * 1e6,
            "fp8": max(flops / (gpu["fp8_tflops"] * 1e12), b8 / bw) * 1e6}


def gemm_sweep(opts: DeviceOptions, roofline, gpu: dict, budget: Budget) -> dict:
    scales = load_scales(opts.calibration)
    out = {"calibration": opts.calibration if scales else None, "presets": {}}
    cache: dict[tuple, dict] = {}
    for preset, spec in opts.presets.items():
        cfg = ModelConfig.from_preset(preset)
        section = out["presets"][preset] = {"beam": spec["beam"], "points": []}
        for users in spec["users"]:
            if budget.left() < 0:
                section["stopped"] = f"time budget spent before {users} users"
                break
            rows = []
            for shape in request_gemms(cfg, users, spec["beam"]):
                key = (shape.m, shape.k, shape.n, shape.layer if scales else None)
                if key not in cache:
                    cache[key] = time_shape(shape, scales if preset == "small" else {},
                                            opts.device, opts.gemm_iters, opts.gemm_reps,
                                            opts.seed)
                pred = _predict_gemm(roofline, gpu, shape)
                rows.append({**cache[key], **shape.__dict__, "roofline_bf16_us": pred["bf16"],
                             "roofline_fp8_us": pred["fp8"]})
            totals = request_totals(rows)
            totals["roofline_bf16_ms"] = sum(r["count"] * r["roofline_bf16_us"] for r in rows) / 1e3
            totals["roofline_fp8_ms"] = sum(r["count"] * r["roofline_fp8_us"] for r in rows) / 1e3
            totals["roofline_speedup"] = totals["roofline_bf16_ms"] / totals["roofline_fp8_ms"]
            section["points"].append({"users": users, "rows_decoder": users * spec["beam"],
                                      "rows_context": users * cfg.max_history,
                                      "totals": totals, "gemms": rows})
            log.info(_gemm_line(preset, users, spec["beam"], totals))
    return out


def _gemm_line(preset: str, users: int, beam: int, t: dict) -> str:
    fp8 = (f"fp8 {t['fp8_ms']:8.3f} ms  x{t['speedup']:.2f} (with quantize x"
           f"{t['speedup_with_quantize']:.2f})") if "fp8_ms" in t else "fp8 skipped"
    return (f"gemm {preset:<6} N={users:<5} N*B={users * beam:<7} bf16 {t['bf16_ms']:8.3f} ms  "
            f"{fp8}  roofline x{t['roofline_speedup']:.2f}")


def save(out_dir: Path, result: dict) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "device_bench.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def device_name(device: str) -> str | None:
    return torch.cuda.get_device_name(0) if device == "cuda" else None

"""FP8 against bf16 GEMMs at exactly the GEMM shapes of one request (device evidence, part 1).

For a model config, ``request_gemms`` lists every ``nn.Linear`` GEMM one request of N users
and B beams runs (context processor: M = N*S rows; each of the L decode steps: M = N*B rows),
the same list ``roofline.py`` counts. Each distinct (M, K, N) is timed as
- ``bf16``: ``x @ w.T`` in bf16 (what ``nn.Linear`` runs);
- ``fp8``: ``torch._scaled_mm`` on E4M3 operands with per-tensor scales (the input already
  quantized: TensorRT fuses the quantization into the producer);
- ``fp8_q``: the same plus the unfused activation quantization (scale, clamp, cast).
Scales come from the quantize stage's ``calibration.json`` where it names the layer, otherwise
from the synthetic operands' amax. Imports torch and numpy only.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from onerec_trt.fp8_format import E4M3_MAX


@dataclass
class GemmShape:
    name: str  # e.g. "decoder.ffn.up"
    layer: str  # one nn.Linear of that shape (its calibration entry), e.g. "blocks.0.ffn.up"
    m: int
    k: int
    n: int
    count: int  # GEMMs of this shape in one request


def request_gemms(cfg, users: int, beam: int, history: int | None = None) -> list[GemmShape]:
    s = history or cfg.max_history
    d, f, kv = cfg.d_model, cfg.ffn_hidden, 2 * cfg.n_kv_heads * cfg.head_dim
    experts = max(cfg.moe_experts, 1)  # MoE is rendered densely: every expert runs
    ffn = "ffn.experts.0" if cfg.moe_experts else "ffn"
    mc, md, cl, dl = users * s, users * beam, cfg.context_layers, cfg.decoder_layers * cfg.levels
    out = [GemmShape("context.attn.qkv", "context.blocks.0.attn.qkv", mc, d, 3 * d, cl),
           GemmShape("context.attn.out", "context.blocks.0.attn.out", mc, d, d, cl),
           GemmShape("context.ffn.gate_up", f"context.blocks.0.{ffn}.up", mc, d, f,
                     2 * cl * experts),
           GemmShape("context.ffn.down", f"context.blocks.0.{ffn}.down", mc, f, d, cl * experts),
           GemmShape("context.kv_proj", "context.kv_proj.0", mc, d, kv, cfg.kv_groups),
           GemmShape("decoder.self_attn.qkv", "blocks.0.self_attn.qkv", md, d, 3 * d, dl),
           GemmShape("decoder.d_x_d", "blocks.0.cross_q", md, d, d, 3 * dl),
           GemmShape("decoder.ffn.gate_up", f"blocks.0.{ffn}.up", md, d, f, 2 * dl * experts),
           GemmShape("decoder.ffn.down", f"blocks.0.{ffn}.down", md, f, d, dl * experts)]
    heads: dict[int, list[int]] = {}
    for step, v in enumerate(cfg.codebook_sizes):
        heads.setdefault(v, []).append(step)
    out += [GemmShape(f"decoder.head.v{v}", f"heads.{steps[0]}", md, d, v, len(steps))
            for v, steps in heads.items()]
    return out


def load_scales(path: str | Path | None) -> dict[str, float]:
    """quantizer name -> scale (amax / 448) from a quantize stage's calibration.json."""
    if path is None or not Path(path).is_file():
        return {}
    data = json.loads(Path(path).read_text())
    # a per-channel weight quantizer holds a list: its largest scale (timing does not depend on it)
    return {k: float(max(v) if isinstance(v, list) else v)
            for k, v in data.get("scale", {}).items()}


def _scale(scales: dict, name: str, tensor: torch.Tensor) -> tuple[float, str]:
    if name in scales and scales[name] > 0:
        return scales[name], "calibration"
    return max(float(tensor.abs().max()) / E4M3_MAX, 1e-12), "operand amax"


def quantize(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Per-tensor E4M3 quantization (saturating: values beyond the range clamp to +-448)."""
    return (x / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


_PAD_M = {"needed": False}  # set once if this torch build wants M % 16 == 0


def scaled_mm(a8: torch.Tensor, b8_t: torch.Tensor, sa: torch.Tensor, sb: torch.Tensor):
    """``_scaled_mm`` (bf16 out); pads M to a multiple of 16 if this torch build insists
    (decided on the first call, so a CUDA graph capture never takes the exception path)."""
    m = a8.shape[0]
    if not _PAD_M["needed"] or m % 16 == 0:
        try:
            return torch._scaled_mm(a8, b8_t, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
        except RuntimeError as exc:
            if "divisible" not in str(exc) or m % 16 == 0:
                raise
            _PAD_M["needed"] = True
    padded = torch.nn.functional.pad(a8.view(torch.uint8), (0, 0, 0, 16 - m % 16))
    out = torch._scaled_mm(padded.view(a8.dtype), b8_t, scale_a=sa, scale_b=sb,
                           out_dtype=torch.bfloat16)
    return out[:m]


def capture_cuda_graph(fn, warmup: int, calls: int = 1) -> torch.cuda.CUDAGraph:
    """Warm ``fn`` up on a side stream, then capture ``calls`` calls of it in one CUDA graph."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    return graph


def time_fn(fn, device: str, iters: int, reps: int) -> float:
    """Median seconds per call. On CUDA: ``iters`` calls captured in one CUDA graph (no launch
    overhead, as in an engine), replayed ``reps`` times between CUDA events."""
    if device != "cuda":
        fn()
        samples = []
        for _ in range(reps):
            start = time.perf_counter()
            for _ in range(iters):
                fn()
            samples.append((time.perf_counter() - start) / iters)
        return statistics.median(samples)
    graph = capture_cuda_graph(fn, warmup=3, calls=iters)
    graph.replay()
    torch.cuda.synchronize()
    samples = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1e3 / iters)
    del graph
    return statistics.median(samples)


def time_shape(shape: GemmShape, scales: dict, device: str, iters: int, reps: int,
               seed: int = 0) -> dict:
    """bf16, fp8 and fp8-with-quantization times (us) and the FP8 output's relative error."""
    gen = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(shape.m, shape.k, generator=gen, device=device).to(torch.bfloat16)
    w = (torch.randn(shape.n, shape.k, generator=gen, device=device) * 0.02).to(torch.bfloat16)
    sx, x_src = _scale(scales, f"{shape.layer}.input_quantizer", x)
    sw, w_src = _scale(scales, f"{shape.layer}.weight_quantizer", w)
    if x_src == "calibration":  # give the synthetic operands the calibrated ranges
        x = x * (sx * E4M3_MAX / max(float(x.abs().max()), 1e-12))
    if w_src == "calibration":
        w = w * (sw * E4M3_MAX / max(float(w.abs().max()), 1e-12))
    row = asdict(shape) | {"scale_source": {"input": x_src, "weight": w_src}}
    row["bf16_us"] = time_fn(lambda: x @ w.t(), device, iters, reps) * 1e6
    if shape.k % 16 or shape.n % 16:
        row["fp8_skipped"] = "FP8 tensor-core GEMMs need K and N multiples of 16"
        return row
    sx_t = torch.tensor(sx, dtype=torch.float32, device=device)
    sw_t = torch.tensor(sw, dtype=torch.float32, device=device)
    x8, w8_t = quantize(x, sx_t), quantize(w, sw_t).t()  # w8_t: column-major [K, N]
    ref = (x @ w.t()).float()
    got = scaled_mm(x8, w8_t, sx_t, sw_t).float()
    row["fp8_rel_error"] = float((got - ref).norm() / ref.norm().clamp_min(1e-30))
    row["fp8_us"] = time_fn(lambda: scaled_mm(x8, w8_t, sx_t, sw_t), device, iters, reps) * 1e6
    row["fp8_q_us"] = time_fn(lambda: scaled_mm(quantize(x, sx_t), w8_t, sx_t, sw_t), device,
                              iters, reps) * 1e6
    flops = 2.0 * shape.m * shape.k * shape.n
    for key in ("bf16", "fp8", "fp8_q"):
        row[f"{key}_tflops"] = flops / (row[f"{key}_us"] * 1e-6) / 1e12
    row["speedup"] = row["bf16_us"] / row["fp8_us"]
    row["speedup_with_quantize"] = row["bf16_us"] / row["fp8_q_us"]
    return row


def request_totals(rows: list[dict]) -> dict:
    """One request's GEMM time (sum of count x time) in bf16 and FP8, and their ratio."""
    out = {}
    for key in ("bf16", "fp8", "fp8_q"):
        if all(f"{key}_us" in r for r in rows):
            out[f"{key}_ms"] = sum(r["count"] * r[f"{key}_us"] for r in rows) / 1e3
    if "fp8_ms" in out:
        out["speedup"] = out["bf16_ms"] / out["fp8_ms"]
        out["speedup_with_quantize"] = out["bf16_ms"] / out["fp8_q_ms"]
    return out

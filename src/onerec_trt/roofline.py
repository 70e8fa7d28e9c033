"""The request-FLOP model: every op of one request with its FLOPs and bytes, and a roofline
estimate of its time, BF16 against FP8 (the analyze stage reports it; quantize weighs its FP8
share by it; bench sets its measurements beside it).

Counted per request (N users, B beams, history S, L levels), as the generation graph runs it:
every GEMM (``nn.Linear``), attention (fused: Q, K, V read once, output written once; full S x S
scores, as the graph computes them), embedding gather, beam top-k (as the CSR plugin renders it:
the logits read once) and self-attention cache reorder. Norms, residual adds and activation
functions are left out (elementwise, fused into neighbours by TensorRT).

Bytes: BF16 operands are 2 bytes; in the FP8 engine a quantized GEMM reads FP8 weights and an
FP8 input (1 byte; the input's quantization is assumed fused into its producer, as TensorRT
fuses Q/DQ) and writes BF16. Attention, gathers and top-k are the same in both engines.
Time per op = max(FLOPs / peak, bytes / bandwidth) (dense tensor-core peak; no overlap between
ops, perfect efficiency within one): an upper bound on speed, not a measurement.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from onerec_trt.errors import user_error

GPU_FILE = Path(__file__).with_name("gpus.json")
BF16, FP8, IDX = 2, 1, 8  # bytes per element (indices are int64)


@dataclass
class Op:
    name: str
    kind: str  # gemm | attention | embedding | topk | gather
    flops: float
    bytes_bf16: float
    bytes_fp8: float
    fp8: bool  # runs on FP8 tensor cores in the FP8 engine
    layer: str | None = None  # the nn.Linear it comes from


def load_gpus(names: list[str] | None = None) -> dict[str, dict]:
    table = json.loads(GPU_FILE.read_text())["gpus"]
    if not names:
        return table
    lookup = {k.lower(): k for k in table}
    unknown = [n for n in names if n.lower() not in lookup]
    if unknown:
        raise user_error(f"unknown GPU {unknown[0]!r}", f"known GPUs: {', '.join(table)}")
    return {lookup[n.lower()]: table[lookup[n.lower()]] for n in names}


def gemm(name: str, m: int, k: int, n: int, layer: str | None, fp8: bool = True) -> Op:
    b16 = BF16 * (m * k + k * n + m * n)
    b8 = FP8 * (m * k + k * n) + BF16 * m * n
    return Op(name, "gemm", 2.0 * m * k * n, b16, b8 if fp8 else b16, fp8, layer)


def attention(name: str, batch: int, hq: int, hkv: int, tq: int, tk: int, hd: int) -> Op:
    nbytes = BF16 * (2 * batch * hq * tq * hd + 2 * batch * hkv * tk * hd)
    return Op(name, "attention", 4.0 * batch * hq * tq * tk * hd, nbytes, nbytes, False)


def _fixed(name: str, kind: str, flops: float, nbytes: float) -> Op:
    return Op(name, kind, flops, nbytes, nbytes, False)


def _ffn(prefix: str, m: int, cfg) -> list[Op]:
    d, f = cfg.d_model, cfg.ffn_hidden

    def swiglu(p: str) -> list[Op]:
        return [gemm(f"{p}.gate", m, d, f, f"{p}.gate"), gemm(f"{p}.up", m, d, f, f"{p}.up"),
                gemm(f"{p}.down", m, f, d, f"{p}.down")]

    if not cfg.moe_experts:  # MoE is rendered densely: every expert runs (see layers.py)
        return swiglu(f"{prefix}.ffn")
    ops = [gemm(f"{prefix}.ffn.router", m, d, cfg.moe_experts, f"{prefix}.ffn.router")]
    for e in range(cfg.moe_experts):
        ops += swiglu(f"{prefix}.ffn.experts.{e}")
    return ops


def _context_ops(cfg, n: int, s: int) -> list[Op]:
    d, h, hkv, hd = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    m = n * s
    ops = [_fixed("context.embed", "embedding", m * d, m * IDX + 3 * BF16 * m * d)]
    for i in range(cfg.context_layers):
        p = f"context.blocks.{i}"
        ops += [gemm(f"{p}.attn.qkv", m, d, 3 * d, f"{p}.attn.qkv"),
                attention(f"{p}.attn.attention", n, h, h, s, s, hd),
                gemm(f"{p}.attn.out", m, d, d, f"{p}.attn.out"), *_ffn(p, m, cfg)]
    for g in range(cfg.kv_groups):
        ops.append(gemm(f"context.kv_proj.{g}", m, d, 2 * hkv * hd, f"context.kv_proj.{g}"))
    return ops


def _decode_ops(cfg, n: int, b: int, s: int, step: int) -> list[Op]:
    d, h, hkv, hd = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    m, v, t = n * b, cfg.codebook_sizes[step], f"step{step}"
    ops = [] if step == 0 else [_fixed(f"{t}.code_embed", "embedding", m * d,
                                       m * IDX + 3 * BF16 * m * d)]
    for j in range(cfg.decoder_layers):
        p = f"blocks.{j}"
        ops += [gemm(f"{t}.{p}.self_attn.qkv", m, d, 3 * d, f"{p}.self_attn.qkv"),
                attention(f"{t}.{p}.self_attention", m, h, h, 1, step + 1, hd),
                gemm(f"{t}.{p}.self_attn.out", m, d, d, f"{p}.self_attn.out"),
                gemm(f"{t}.{p}.cross_q", m, d, d, f"{p}.cross_q"),
                attention(f"{t}.{p}.cross_attention", n, h, hkv, b, s, hd),
                gemm(f"{t}.{p}.cross_out", m, d, d, f"{p}.cross_out"),
                *[_rename(op, f"{t}.") for op in _ffn(p, m, cfg)]]
    ops.append(gemm(f"{t}.heads.{step}", m, d, v, f"heads.{step}"))
    ops.append(_fixed(f"{t}.beam_topk", "topk", 5.0 * m * v, BF16 * m * v + 3 * IDX * m))
    if step + 1 < cfg.levels:
        cache = cfg.decoder_layers * 2 * m * (step + 1) * d  # K and V of every block
        ops.append(_fixed(f"{t}.cache_reorder", "gather", 0.0, 2 * BF16 * cache + IDX * m))
    return ops


def _rename(op: Op, prefix: str) -> Op:
    op.name = prefix + op.name
    return op


def onerec_ops(cfg, users: int, beam: int, history: int | None = None,
               excluded: frozenset[str] = frozenset()) -> list[Op]:
    """Every op of one request of the generation graph for a model config."""
    s = history or cfg.max_history
    ops = _context_ops(cfg, users, s)
    for step in range(cfg.levels):
        ops += _decode_ops(cfg, users, beam, s, step)
    for op in ops:
        if op.layer in excluded:
            op.fp8, op.bytes_fp8 = False, op.bytes_bf16
    return ops


def dcn_ops(cfg, fields: int, users: int, candidates: int) -> list[Op]:
    """One ranking request of the DCN: ``users * candidates`` (user, item) rows."""
    r, e = users * candidates, cfg.embedding_dim
    width = e * (fields + 1)
    genre_rows = 6  # the genre bag reads up to six rows per item (MovieLens-1M's maximum)
    gathered = r * (fields + genre_rows)
    ops = [_fixed("embed", "embedding", r * width, gathered * (IDX + BF16 * e) + BF16 * r * width)]
    ops += [gemm(f"cross.{i}", r, width, width, f"cross.{i}") for i in range(cfg.cross_layers)]
    last = width
    for i, hidden in enumerate(cfg.hidden):
        ops.append(gemm(f"deep.{2 * i}", r, last, hidden, f"deep.{2 * i}"))
        last = hidden
    ops.append(gemm("out", r, width + last, 1, "out"))
    ops.append(_fixed("topk", "topk", 5.0 * r, 4 * r + 2 * IDX * users * candidates))
    return ops


def op_time(op: Op, gpu: dict, precision: str) -> tuple[float, str]:
    """Predicted seconds and the bound ('compute' or 'memory') of one op."""
    fp8 = precision == "fp8" and op.fp8
    peak = (gpu["fp8_tflops"] if fp8 else gpu["bf16_tflops"]) * 1e12
    nbytes = op.bytes_fp8 if precision == "fp8" else op.bytes_bf16
    compute, memory = op.flops / peak, nbytes / (gpu["memory_tbs"] * 1e12)
    return max(compute, memory), "compute" if compute >= memory else "memory"


def predict(ops: list[Op], gpu: dict) -> dict:
    """BF16 and FP8 roofline times of a request (FP8: None where the GPU has no FP8)."""
    has_fp8 = gpu.get("fp8_tflops") is not None
    rows, total = [], {"bf16": 0.0, "fp8": 0.0}
    compute_bound = {"bf16": 0.0, "fp8": 0.0}
    for op in ops:
        row = {"name": op.name, "kind": op.kind}
        for prec in ("bf16", "fp8") if has_fp8 else ("bf16",):
            seconds, bound = op_time(op, gpu, prec)
            row[f"{prec}_us"], row[f"{prec}_bound"] = seconds * 1e6, bound
            total[prec] += seconds
            if bound == "compute":
                compute_bound[prec] += seconds
        row["speedup"] = row["bf16_us"] / row["fp8_us"] if has_fp8 and row["fp8_us"] else None
        rows.append(row)
    out = {"bf16_ms": total["bf16"] * 1e3,
           "compute_bound_share_bf16": compute_bound["bf16"] / total["bf16"]}
    if has_fp8:
        out |= {"fp8_ms": total["fp8"] * 1e3, "predicted_speedup": total["bf16"] / total["fp8"],
                "compute_bound_share_fp8": compute_bound["fp8"] / total["fp8"]}
    else:
        out |= {"fp8_ms": None, "predicted_speedup": None,
                "note": "no FP8 tensor cores: an FP8 engine cannot be built for this GPU"}
    return out | {"ops": rows}


def totals(ops: list[Op]) -> dict:
    flops = sum(op.flops for op in ops)
    b16, b8 = sum(op.bytes_bf16 for op in ops), sum(op.bytes_fp8 for op in ops)
    return {"flops": flops, "bytes_bf16": b16, "bytes_fp8": b8,
            "intensity_bf16": flops / b16, "intensity_fp8": flops / b8,
            "fp8_gemm_flops_share": sum(op.flops for op in ops if op.fp8) / flops}


def op_table(ops: list[Op]) -> list[dict]:
    return [asdict(op) | {"intensity_bf16": op.flops / op.bytes_bf16 if op.bytes_bf16 else None,
                          "intensity_fp8": op.flops / op.bytes_fp8 if op.bytes_fp8 else None}
            for op in ops]


def sweep(make_ops, beam: int, gpu: dict, max_rows: int = 1 << 16) -> dict:
    """Predicted times for N*B = 1, 2, 4, ... rows (N = rows // B users of B beams; B = rows
    below one full beam) and the smallest N*B from which most of the BF16 time is compute-bound.
    """
    points, threshold = [], None
    rows = 1
    while rows <= max_rows:
        b = min(beam, rows)
        n = max(1, rows // beam)
        p = predict(make_ops(n, b), gpu)
        share = p["compute_bound_share_bf16"]
        points.append({"rows": n * b, "users": n, "beam": b, "bf16_ms": p["bf16_ms"],
                       "fp8_ms": p["fp8_ms"], "predicted_speedup": p["predicted_speedup"],
                       "compute_bound_share_bf16": share})
        if threshold is None and share >= 0.5:
            threshold = n * b
        rows *= 2
    return {"points": points, "compute_bound_from_rows": threshold, "max_rows": max_rows,
            "rule": "smallest N*B at which >= 50% of the predicted BF16 time is in "
                    "compute-bound ops"}


def roofline_section(entries: dict[str, dict], gpus: dict[str, dict]) -> dict:
    """For each model (``make_ops(users, beam)``, ``users``, ``beam``): the request's ops and
    totals, and per GPU the predicted times, FP8 speed-up and the compute-bound sweep."""
    out = {}
    for key, entry in entries.items():
        make_ops, users, beam = entry["make_ops"], entry["users"], entry["beam"]
        ops = make_ops(users, beam)
        section = {"description": entry["description"],
                   "shape": {"users": users, "beam": beam, **entry.get("shape", {})},
                   "totals": totals(ops), "ops": op_table(ops)}
        for name, gpu in gpus.items():
            section[name] = predict(ops, gpu) | {"sweep": sweep(make_ops, beam, gpu)}
        out[key] = section
    return out

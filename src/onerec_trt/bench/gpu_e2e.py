"""End-to-end generation of one preset in bf16 and with FP8 linear layers, optionally under
CUDA graphs (device evidence, part 2). Imports torch, numpy and the model only.

- The model: random weights in bf16, built on ``meta`` and materialised once on the device.
- The catalogue: a synthetic trie of random unique semantic IDs; generation is the one loop
  (``model.generate.Generator``) with the beam step ``triton-lang`` (the plugin's Triton kernels)
  where it imports and runs, else ``csr`` (standard torch ops over the trie's CSR arrays);
  dense trie tables are never built (3 x 8192 codes do not fit them).
- FP8: every ``nn.Linear`` (the layers the quantize stage puts in FP8) becomes ``Fp8Linear``:
  E4M3 weights with a per-tensor scale, the input quantized with a static per-tensor scale
  calibrated (max) on one bf16 request, ``torch._scaled_mm`` with bf16 output. Attention
  matmuls, norms and the beam logic stay as they are (as in our FP8 graph).
"""

from __future__ import annotations

import logging
import time

import torch
from torch import nn

from onerec_trt.bench.gpu_gemm import E4M3_MAX, capture_cuda_graph, quantize, scaled_mm, time_fn
from onerec_trt.bench.stats import latency_summary
from onerec_trt.model.generate import Generator, make_step

log = logging.getLogger(__name__)


class Fp8Linear(nn.Module):
    def __init__(self, linear: nn.Linear, input_amax: float):
        super().__init__()
        w = linear.weight.detach()
        w_scale = max(float(w.abs().max()) / E4M3_MAX, 1e-12)
        self.out_features = linear.out_features
        self.register_buffer("w_scale", torch.tensor(w_scale, dtype=torch.float32,
                                                     device=w.device))
        self.register_buffer("x_scale", torch.tensor(max(input_amax, 1e-12) / E4M3_MAX,
                                                     dtype=torch.float32, device=w.device))
        self.register_buffer("weight8", quantize(w.float(), self.w_scale))  # [N, K]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x8 = quantize(x.reshape(-1, shape[-1]).contiguous(), self.x_scale)
        y = scaled_mm(x8, self.weight8.t(), self.x_scale, self.w_scale)
        return y.reshape(*shape[:-1], self.out_features)


def input_amax(model: nn.Module, run) -> dict[str, float]:
    """Max |input| of every nn.Linear over ``run()`` (max calibration, as ModelOpt's)."""
    amax: dict[str, torch.Tensor] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            def hook(_m, args, name=name):
                value = args[0].detach().abs().max().float()
                amax[name] = torch.maximum(amax[name], value) if name in amax else value
            hooks.append(module.register_forward_pre_hook(hook))
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return {k: float(v) for k, v in amax.items()}


def to_fp8(model: nn.Module, amax: dict[str, float]) -> int:
    """Swap every calibrated nn.Linear for an Fp8Linear, in place; returns how many."""
    swapped = 0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and full in amax:
                setattr(module, child_name, Fp8Linear(child, amax[full]))
                swapped += 1
    return swapped


def choose_step(trie, device: str, prefer: str = "auto", probe=None):
    """(beam step module, description): the plugin's Triton kernels if wanted and they run on
    ``probe`` (``(logits, scores, node)`` of a real step 0), else the ``csr`` torch step."""
    if prefer in ("auto", "plugin") and device == "cuda":
        try:
            step = make_step("triton-lang", trie).to(device)
            if probe is not None:
                step(*probe, 0, probe[1].shape[1])
                torch.cuda.synchronize()
            return step, "plugins.kernels TrieBeamStep (Triton)"
        except Exception as exc:  # report and fall back: the e2e number still has meaning
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            return (make_step("csr", trie).to(device),
                    f"torch csr step (plugin kernel failed: {reason})")
    why = "requested" if prefer == "torch" else "no CUDA device"
    return make_step("csr", trie).to(device), f"torch csr step ({why})"


def time_generation(generator: Generator, history, device: str, reps: int,
                    cuda_graph: bool) -> dict:
    """p50/p99 latency, throughput and peak memory of one request shape."""
    run = lambda: generator(history)  # noqa: E731
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if device == "cuda" and cuda_graph:
        run = capture_cuda_graph(run, warmup=2).replay
    else:
        run()
    seconds = []
    for _ in range(reps):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    out = latency_summary(seconds, history.shape[0]) | {"cuda_graph": cuda_graph}
    if device == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def _histories(cfg, users: int, device: str, seed: int) -> torch.Tensor:
    gen = torch.Generator(device="cpu").manual_seed(seed + users)
    return torch.randint(1, cfg.num_items + 1, (users, cfg.max_history), generator=gen).to(device)


def _time_point(generator, history, opts) -> dict:
    """Under a CUDA graph when asked; if the capture fails, eagerly, with the reason kept."""
    args = (generator, history, opts.device, opts.e2e_reps)
    use_graph = opts.cuda_graphs and opts.device == "cuda"
    try:
        return time_generation(*args, use_graph)
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as exc:
        if not use_graph:
            raise
        torch.cuda.synchronize()
        return time_generation(*args, False) | {
            "cuda_graph_failed": f"{type(exc).__name__}: {str(exc)[:200]}"}


def _sweep(generator, cfg, opts, budget, label: str) -> dict:
    """One variant (bf16 or fp8) over the user counts; stops on the budget or out of memory."""
    points = {}
    for users in opts.e2e_users:
        if budget.left() < 0:
            points[str(users)] = {"skipped": "time budget spent"}
            break
        history = _histories(cfg, users, opts.device, opts.seed)
        try:
            r = _time_point(generator, history, opts)
        except torch.cuda.OutOfMemoryError as exc:
            points[str(users)] = {"skipped": f"out of memory: {str(exc)[:120]}"}
            torch.cuda.empty_cache()
            break
        points[str(users)] = r
        log.info(f"e2e {label:<5} N={users:<4} p50 {r['p50_ms']:9.2f} ms  "
                 f"p99 {r['p99_ms']:9.2f} ms  {r['throughput_users_per_s']:9.1f} users/s")
    return points


def run_e2e(opts, roofline, gpu: dict, budget) -> dict:
    """bf16 then FP8 generation of ``opts.e2e_preset`` for each user count, with the roofline."""
    from onerec_trt.model.config import ModelConfig
    from onerec_trt.model.synthetic import random_model, synthetic_ids

    cfg = ModelConfig.from_preset(opts.e2e_preset, **{"dropout": 0.0, **opts.e2e_config})
    if cfg.num_items <= 0:  # presets fitted to data leave the catalogue size to training
        cfg.num_items = 10_000
    t0 = time.perf_counter()
    ids = synthetic_ids(cfg.num_items, cfg.codebook_sizes, opts.seed)
    model = random_model(cfg, ids, opts.device, torch.bfloat16, opts.seed)
    probe = (torch.randn(1, opts.e2e_beam, cfg.codebook_sizes[0], device=opts.device),
             torch.full((1, opts.e2e_beam), float("-inf"), device=opts.device).index_fill_(
                 1, torch.tensor([0], device=opts.device), 0.0),
             torch.zeros(1, opts.e2e_beam, dtype=torch.long, device=opts.device))
    t_step = time.perf_counter()
    step, step_desc = choose_step(ids.trie, opts.device, opts.beam_step, probe)
    step_desc += f"; chosen in {time.perf_counter() - t_step:.1f}s (kernel compile included)"
    out = {"preset": opts.e2e_preset, "config": cfg.to_dict(), "beam": opts.e2e_beam,
           "topk": opts.e2e_topk, "parameters": sum(p.numel() for p in model.parameters()),
           "catalogue": f"synthetic: {cfg.num_items} random unique semantic IDs, "
                        f"{cfg.codebook_sizes} codes; trie nodes "
                        f"{[ids.trie.nodes(t) for t in range(cfg.levels + 1)]}",
           "beam_step": step_desc, "weights": "random normal(0, 0.02), bf16",
           "setup_s": time.perf_counter() - t0}
    log.info(f"e2e {opts.e2e_preset}: {out['parameters'] / 1e6:.1f}M parameters, beam "
             f"{opts.e2e_beam}, beam step: {step_desc}")
    out["beam_step_timing"] = time_beam_steps(ids.trie, cfg, opts, step_desc)
    generator = Generator(model, opts.e2e_beam, min(opts.e2e_topk, opts.e2e_beam), step,
                          ids.trie).to(opts.device)
    out["bf16"] = _sweep(generator, cfg, opts, budget, "bf16")
    calib = _histories(cfg, min(opts.e2e_users), opts.device, opts.seed + 1)
    amax = input_amax(model, lambda: generator(calib))
    out["fp8_linears"] = to_fp8(model, amax)
    out["fp8_calibration"] = (f"max |input| per nn.Linear over one bf16 request of "
                              f"{calib.shape[0]} users; weights per-tensor amax")
    out["fp8"] = _sweep(generator, cfg, opts, budget, "fp8")
    out["comparison"] = _compare(out, cfg, opts, roofline, gpu)
    return out


def time_beam_steps(trie, cfg, opts, chosen: str) -> dict:
    """The beam step alone at step 0 (every code of the root is a child: the widest step), for
    the csr torch step and, where it was chosen, the plugin's Triton kernels."""
    impls = {"torch csr step": make_step("csr", trie).to(opts.device)}
    if chosen.startswith("plugins.kernels"):
        impls["plugins.kernels TrieBeamStep"] = make_step("triton-lang", trie).to(opts.device)
    out = {}
    for users in opts.e2e_users:
        gen = torch.Generator(device=opts.device).manual_seed(opts.seed)
        logits = torch.randn(users, opts.e2e_beam, cfg.codebook_sizes[0], generator=gen,
                             device=opts.device)
        scores = torch.full((users, opts.e2e_beam), float("-inf"), device=opts.device)
        scores[:, 0] = 0.0
        node = torch.zeros(users, opts.e2e_beam, dtype=torch.long, device=opts.device)
        row = {}
        for name, step in impls.items():
            try:
                args = (logits, scores, node, 0, opts.e2e_beam)
                row[name + " ms"] = time_fn(lambda s=step, a=args: s(*a), opts.device, 5,
                                            5) * 1e3
            except Exception as exc:  # keep the other implementation's number
                row[name + " failed"] = f"{type(exc).__name__}: {str(exc)[:160]}"
        out[str(users)] = row
    return out


def _compare(out: dict, cfg, opts, roofline, gpu: dict) -> dict:
    rows = {}
    for users, b in out["bf16"].items():
        f = out["fp8"].get(users, {})
        if "p50_ms" not in b or "p50_ms" not in f:
            continue
        row = {"measured_speedup": b["p50_ms"] / f["p50_ms"],
               "latency_reduction": 1 - f["p50_ms"] / b["p50_ms"],
               "throughput_gain": f["throughput_users_per_s"] / b["throughput_users_per_s"] - 1}
        if roofline is not None:
            p = roofline.predict(roofline.onerec_ops(cfg, int(users), opts.e2e_beam), gpu)
            row |= {"roofline_bf16_ms": p["bf16_ms"], "roofline_fp8_ms": p["fp8_ms"],
                    "roofline_speedup": p["predicted_speedup"],
                    "bf16_efficiency": p["bf16_ms"] / b["p50_ms"],
                    "fp8_efficiency": p["fp8_ms"] / f["p50_ms"]}
        rows[users] = row
    return rows

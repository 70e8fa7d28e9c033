"""Device check of the beam-search plugin kernels on a CUDA GPU (torch + triton + numpy only).

    PYTHONPATH=src python scripts/device_plugins.py [--out DIR] [--quick]

1. correctness: the Triton kernels (TrieBeamExpand -> TrieBeamSelect, CodesToItem) against the
   plugin ops in torch (``plugins.torch_ops``) on the GPU, on a synthetic paper-scale trie
   (3 x 8192 codes, 1M items):
   random scores (step 1, every beam alive), the root step (one live beam, 8192 children),
   exact ties, invalid nodes, fp32 and bf16 logits;
2. timing against the torch baseline of the issue (log_softmax + topk over [N, B*V]) for
   N in {1, 16, 64}, B in {64, 256, 512}, V = 8192, with achieved GB/s next to the GPU's memory
   bandwidth (nominal, by name, and a measured device copy);
3. the AOT launch contract, for all three plugins (TrieBeamExpand with fp32 and bf16 logits,
   TrieBeamSelect, CodesToItem): the PTX that ``aot_impl`` hands TensorRT (the same
   ``compile_kernel`` call, for this GPU's compute capability as ``register_plugins`` compiles
   for the build GPU; hidden Triton parameters removed) loaded with the CUDA driver API and
   launched with the grid, block, shared memory and argument list (inputs, int32 scalars,
   outputs) ``aot_impl`` gives TensorRT; each output must equal the Triton launch.

Writes device_plugins.json to --out (default: $OUT, else ./device_out). Budget: <= 5 minutes.
``--smoke`` runs the same code on the CPU (Triton interpreter, tiny sizes) to catch mistakes
before a GPU run; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

NOMINAL_GBPS = {"H200": 4800.0, "H100 SXM": 3350.0, "H100 PCIe": 2000.0, "H100": 3350.0,
                "A100": 2039.0, "L40S": 864.0, "L4": 300.0}  # NVIDIA data sheets
BUDGET_S = 270.0
ITEM_CODES: dict = {}  # a few catalogue items' codes, for CodesToItem


class Config:
    """Sizes and device; ``--smoke`` shrinks them and moves to the CPU."""

    device = "cuda"
    vocab = 8192
    items = 1_000_000
    ns, bs = [1, 16, 64], [64, 256, 512]
    cases = [("random", 16, 512, torch.float32), ("random", 16, 512, torch.bfloat16),
             ("root", 4, 512, torch.float32), ("ties", 4, 256, torch.float32),
             ("invalid", 4, 64, torch.float32), ("random", 64, 512, torch.float32),
             ("random", 1, 64, torch.bfloat16)]

    @classmethod
    def smoke(cls) -> None:
        cls.device, cls.vocab, cls.items, cls.ns, cls.bs = "cpu", 32, 2000, [1, 2], [4, 8]
        cls.cases = [(kind, 2, 8, dt) for kind, _, _, dt in cls.cases[:5]]


C = Config


def nominal_bandwidth(name: str) -> float | None:
    for key, gbps in NOMINAL_GBPS.items():
        if key in name:
            return gbps
    return None


def copy_bandwidth() -> float:
    """Measured device-to-device copy, GB/s (read + write counted)."""
    x = torch.empty(256 * 2 ** 20 if C.device == "cuda" else 2 ** 20, dtype=torch.float32,
                    device=C.device)
    y = torch.empty_like(x)
    ms = time_ms(lambda: y.copy_(x), reps=20)
    return 2 * x.numel() * 4 / ms / 1e6


def time_ms(fn, reps: int = 20, warmup: int = 3) -> float:
    if C.device != "cuda":
        t0 = time.perf_counter()
        fn()
        return 1e3 * (time.perf_counter() - t0)
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def build_trie(seed: int = 0):
    from onerec_trt.model.trie import Trie
    from onerec_trt.plugins.packed import PackedTrie

    rng = np.random.default_rng(seed)
    v, items = C.vocab, C.items
    codes = np.unique(rng.integers(0, v, (int(items * 1.02), 3)), axis=0)
    codes = codes[rng.permutation(len(codes))[:items]]
    trie = Trie.from_codes(codes, np.arange(1, len(codes) + 1), [v, v, v])
    packed = PackedTrie.from_trie(trie)
    ITEM_CODES["codes"] = codes[:64]  # real items' codes (item i + 1 has codes[i])
    return {k: torch.from_numpy(a).to(C.device) for k, a in packed.arrays().items()}, packed


def make_inputs(kind: str, n: int, b: int, packed, dtype, seed: int):
    dev, v = C.device, C.vocab
    g = torch.Generator(device=dev).manual_seed(seed)
    logits = torch.randn(n, b, v, device=dev, generator=g)
    if kind == "root":  # step 0: beam 0 alive at the root
        step, scores = 0, torch.full((n, b), float("-inf"), device=dev)
        scores[:, 0] = 0.0
        node = torch.zeros(n, b, dtype=torch.long, device=dev)
    else:  # step 1: every beam alive on a random level-1 node (a few invalid ones)
        step = 1
        scores = -torch.rand(n, b, device=dev, generator=g).sort(1, descending=True)[0] * 4 - 5
        node = torch.randint(0, packed.nodes(1), (n, b), device=dev, generator=g)
        if kind == "ties":  # equal rows, equal scores, few distinct logit values
            logits = (logits[:, :1] * 2).round().div(2).expand(n, b, v).contiguous()
            scores = torch.full((n, b), -3.0, device=dev)
            node[:, b // 2:] = node[:, :1]
        if kind == "invalid":
            node[:, ::7] = -1
            node[:, 3::11] = packed.nodes(1) + 5
    return logits.to(dtype), scores, node, step


def compare(kind, n, b, dtype, trie, packed, seed) -> dict:
    from onerec_trt.plugins import kernels, torch_ops

    logits, scores, node, step = make_inputs(kind, n, b, packed, dtype, seed)
    args = (logits, scores, node, trie["indptr"], trie["child_code"], trie["offsets"], step, b)
    ref = torch_ops.trie_beam_step(*args)
    out = kernels.trie_beam_step(*args)
    same = [(r == o).all(dim=1) for r, o in zip(ref[1:], out[1:], strict=True)]
    rows_same = (same[0] & same[1] & same[2]).float().mean().item()
    finite = torch.isfinite(ref[0])
    diff = (ref[0] - out[0]).abs()[finite].max().item() if finite.any() else 0.0
    # a differing row is explained when the reference has a near-tie there
    gap = (ref[0][:, :-1] - ref[0][:, 1:]).abs()
    near_tie_rows = (gap < 1e-5).any(1).float().mean().item()
    items = kernels.codes_to_item(torch.stack([out[2]] * 3, -1), trie["indptr"],
                                  trie["child_code"], trie["offsets"], trie["leaf_item"])
    items_ref = torch_ops.codes_to_item(torch.stack([out[2]] * 3, -1), trie["indptr"],
                                        trie["child_code"], trie["offsets"], trie["leaf_item"])
    return {"kind": kind, "N": n, "B": b, "V": C.vocab, "dtype": str(dtype).replace("torch.", ""),
            "step": step, "rows_identical": rows_same, "max_abs_score_diff": diff,
            "near_tie_rows": near_tie_rows, "neg_inf_match": bool(
                torch.equal(torch.isinf(ref[0]), torch.isinf(out[0]))),
            "codes_to_item_identical": bool(torch.equal(items, items_ref))}


def timing(n, b, dtype, trie, packed, seed) -> dict:
    from onerec_trt.plugins import kernels

    logits, scores, node, step = make_inputs("random", n, b, packed, dtype, seed)
    t = (trie["indptr"], trie["child_code"], trie["offsets"])
    cand = kernels.trie_beam_expand(logits, scores, node, *t, step, b)
    expand_ms = time_ms(lambda: kernels.trie_beam_expand(logits, scores, node, *t, step, b))
    v = C.vocab
    select_ms = time_ms(lambda: kernels.trie_beam_select(cand, node, *t, step, b, v))
    ours_ms = time_ms(lambda: kernels.trie_beam_step(logits, scores, node, *t, step, b))

    def baseline():
        logp = torch.log_softmax(logits.float(), dim=-1) + scores.unsqueeze(-1)
        return torch.topk(logp.reshape(n, b * v), b, dim=1)

    base_ms = time_ms(baseline)
    elem = logits.element_size()
    kc = cand.shape[-1]
    ours_bytes = n * b * v * elem + 2 * n * b * kc * 8 + n * b * 16 + n * b * 32
    base_bytes = n * b * v * (elem + 4 + 4) + n * b * 16  # read, write fp32, read for topk
    return {"N": n, "B": b, "V": v, "dtype": str(dtype).replace("torch.", ""),
            "ours_ms": ours_ms, "expand_ms": expand_ms, "select_ms": select_ms,
            "torch_baseline_ms": base_ms, "speedup": base_ms / ours_ms,
            "ours_GBps": ours_bytes / ours_ms / 1e6, "baseline_GBps": base_bytes / base_ms / 1e6}


def aot_launch_check(trie, packed) -> dict:
    """Launch each plugin's AOT PTX through the driver API exactly as TensorRT gets it from
    ``aot_impl``: the same ``compile_kernel`` call, for this device's compute capability (what
    ``register_plugins`` compiles for on the build GPU), the same grid and int32 extra arguments
    (``aot.expand_launch``/``select_launch``/``codes_launch``, which ``tensorrt_plugins`` uses),
    block = warps * 32 and the kernel's shared memory; argument order (inputs, int32 scalars,
    outputs). Each result must equal the Triton launch."""
    import ctypes

    from onerec_trt.plugins import aot, kernels

    arch = aot.arch_of(torch.cuda.get_device_capability())
    cuda = ctypes.CDLL("libcuda.so.1")
    check = _cu_check(cuda)
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    t = trie
    levels1 = t["offsets"].shape[1]
    n, b, v = 4, 64, C.vocab
    results = {"arch": arch, "ptx_target": aot.ptx_target(arch), "kernels": []}

    def launch(k, grid, inputs, ints, outputs):
        module, func = ctypes.c_void_p(), ctypes.c_void_p()
        check(cuda.cuModuleLoadData(ctypes.byref(module), k.ptx.encode() + b"\0"), "load PTX")
        try:
            check(cuda.cuModuleGetFunction(ctypes.byref(func), module, k.name.encode()),
                  "get function")
            args = ([ctypes.c_uint64(x.data_ptr()) for x in inputs]
                    + [ctypes.c_int32(int(x)) for x in ints]
                    + [ctypes.c_uint64(x.data_ptr()) for x in outputs])
            params = (ctypes.c_void_p * len(args))(
                *[ctypes.cast(ctypes.pointer(a), ctypes.c_void_p) for a in args])
            gx, gy = (int(grid[0]), int(grid[1]) if len(grid) > 1 else 1)
            check(cuda.cuLaunchKernel(func, gx, gy, 1, k.num_warps * 32, 1, 1, k.shared, stream,
                                      params, None), "launch")
            torch.cuda.synchronize()
        finally:
            cuda.cuModuleUnload(module)

    def record(k, same: bool, **extra):
        results["kernels"].append({"plugin": k.plugin, "kernel": k.name, "arch": k.arch,
                                   "hidden_params_removed": k.hidden_params_removed,
                                   "ptx_bytes": len(k.ptx), "shared": k.shared,
                                   "identical_to_triton_launch": same, **extra})

    trie_in = [t["indptr"], t["child_code"], t["offsets"]]
    cand = None
    for dtype, name in ((torch.float32, "float32"), (torch.bfloat16, "bfloat16")):
        logits, scores, node, step = make_inputs("random", n, b, packed, dtype, 7)
        k = aot.compile_kernel("TrieBeamExpand", logits_dtype=name, beam_out=b, vocab=v,
                               arch=arch)
        grid, ints = aot.expand_launch(n, b, v, step, levels1)
        out = torch.full((n, b, k.constants["KC"]), -7, dtype=torch.long, device="cuda")
        launch(k, grid, [logits, scores, node, *trie_in], ints, [out])
        ref = kernels.trie_beam_expand(logits, scores, node, *trie_in, step, b)
        record(k, bool(torch.equal(out, ref)), logits=name)
        cand = ref
    k = aot.compile_kernel("TrieBeamSelect", beam_out=b, vocab=v, beams=b, arch=arch)
    grid, ints = aot.select_launch(n, b, v, step, levels1, b)
    outs = [torch.full((n, b), -7, dtype=dt, device="cuda")
            for dt in (torch.float32, torch.int64, torch.int64, torch.int64)]
    launch(k, grid, [cand, node, *trie_in], ints, outs)
    ref = kernels.trie_beam_select(cand, node, *trie_in, step, b, v)
    record(k, all(torch.equal(o, r) for o, r in zip(outs, ref, strict=True)))
    g = torch.Generator(device="cuda").manual_seed(11)
    codes = torch.randint(0, v, (n, 10, 3), generator=g, device="cuda")  # mostly no item
    real = torch.from_numpy(ITEM_CODES["codes"][:5 * n]).to("cuda").reshape(n, 5, 3)
    codes[:, :5] = real  # half real items: the walk must find them
    k = aot.compile_kernel("CodesToItem", arch=arch)
    grid, ints = aot.codes_launch(n * 10, 3, lambda a, b_: -(-a // b_))
    items = torch.full((n, 10), -7, dtype=torch.long, device="cuda")
    launch(k, grid, [codes, *trie_in, t["leaf_item"]], ints, [items])
    ref_items = kernels.codes_to_item(codes, *trie_in, t["leaf_item"])
    record(k, bool(torch.equal(items, ref_items)),
           items_found=int((ref_items[:, :5] == torch.arange(1, 5 * n + 1, device="cuda")
                            .reshape(n, 5)).sum()))
    results["all_identical"] = all(r["identical_to_triton_launch"] for r in results["kernels"])
    return results


def _cu_check(cuda):
    def check(code: int, what: str) -> None:
        if code != 0:
            raise RuntimeError(f"CUDA driver error {code} in {what}")
    return check


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.environ.get("OUT", "device_out"))
    p.add_argument("--quick", action="store_true", help="N=1 and 16, B=64 and 512 only")
    p.add_argument("--smoke", action="store_true", help="CPU run with tiny sizes (interpreter)")
    args = p.parse_args()
    if args.smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported
        C.smoke()
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"python": platform.python_version(), "torch": torch.__version__}
    if C.device == "cuda" and not torch.cuda.is_available():
        result["error"] = "no CUDA device"
        (out / "device_plugins.json").write_text(json.dumps(result, indent=2))
        print("no CUDA device")
        return 2
    import triton

    gpu = C.device == "cuda"
    name = torch.cuda.get_device_name() if gpu else f"CPU smoke run ({platform.machine()})"
    result.update(device=name, triton=triton.__version__, nominal_GBps=nominal_bandwidth(name),
                  capability=torch.cuda.get_device_capability() if gpu else None,
                  copy_GBps=copy_bandwidth())
    print(f"{name}: nominal {result['nominal_GBps']} GB/s, measured copy "
          f"{result['copy_GBps']:.0f} GB/s; torch {torch.__version__}, triton {triton.__version__}")
    trie, packed = build_trie()
    result["trie_nodes"] = [packed.nodes(d) for d in range(4)]
    ns, bs = (C.ns[:2], C.bs[::2]) if args.quick else (C.ns, C.bs)
    result["correctness"], result["timing"], result["errors"] = [], [], []
    for i, case in enumerate(C.cases):
        _guarded(result, "correctness", lambda c=case, s=i: compare(*c, trie, packed, s), t0)
    for dtype in (torch.float32, torch.bfloat16):
        for n in ns:
            for b in bs:
                _guarded(result, "timing", lambda n=n, b=b, d=dtype: timing(n, b, d, trie, packed,
                                                                           n * b), t0)
    if gpu:
        _guarded(result, "aot_launch", lambda: aot_launch_check(trie, packed), t0, single=True)
        if "aot_launch" in result and not result["aot_launch"]["all_identical"]:
            result["errors"].append("aot_launch: a driver-API launch differs from Triton's")
    result["seconds"] = time.perf_counter() - t0
    (out / "device_plugins.json").write_text(json.dumps(result, indent=2))
    _print_summary(result)
    return 0 if not result["errors"] else 1


def _guarded(result: dict, key: str, fn, t0: float, single: bool = False) -> None:
    if time.perf_counter() - t0 > BUDGET_S:
        result["errors"].append(f"{key}: skipped, time budget spent")
        return
    try:
        value = fn()
    except Exception as exc:  # report and keep going: one failing case must not hide the rest
        result["errors"].append(f"{key}: {type(exc).__name__}: {exc}")
        print(f"{key}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return
    if single:
        result[key] = value
    else:
        result[key].append(value)
    print(key, json.dumps(value))


def _print_summary(result: dict) -> None:
    bw = result.get("nominal_GBps") or result.get("copy_GBps")
    from onerec_trt.tables import plain_lines

    rows = [[r["dtype"], r["N"], r["B"], r["ours_ms"], r["torch_baseline_ms"], r["speedup"],
             r["ours_GBps"], f"{100 * r['ours_GBps'] / bw:.1f}%"] for r in result["timing"]]
    print("\n" + "\n".join(plain_lines(
        ["dtype", "N", "B", "ours ms", "torch ms", "speedup", "ours GB/s", "% of bw"],
        ["9", ">4", ">5", ">10.3f", ">10.3f", ">9.2f", ">11.0f", ">9"], rows)))
    print(f"{len(result['errors'])} error(s); {result['seconds']:.0f}s")


if __name__ == "__main__":
    sys.exit(main())

"""The Triton kernels against the plugin ops in torch (``torch_ops``), on the CPU
(``TRITON_INTERPRET=1``), and the kernels' ahead-of-time PTX (what TensorRT's ``aot_impl``
embeds) assembled with ptxas.

The interpreter has to be switched on before triton is imported, so the kernels run in a
subprocess: this file, run as a script, computes every case and writes JSON; the tests read it.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()
# name: (N, B, V, B', step, kind); V is every level's codebook size
CASES = {
    "random_n3": (3, 6, 16, 6, 1, "random"),
    "edge_dead_and_invalid_nodes": (2, 7, 16, 9, 1, "edge"),
    "ties_across_and_within_beams": (2, 8, 16, 8, 1, "ties"),
    "ties_at_the_root_threshold": (1, 8, 64, 8, 0, "root_ties"),
    "children_run_out": (2, 6, 8, 12, 2, "edge"),
    "childless_nodes": (2, 6, 8, 6, 1, "childless"),
    "all_beams_dead": (2, 4, 8, 5, 1, "dead"),
    "beam_out_above_vocab": (2, 10, 4, 10, 1, "random"),
    "beam_out_above_beams": (1, 2, 16, 12, 1, "random"),
    "b1": (1, 1, 32, 1, 1, "random"),
    "b1_wide": (1, 1, 32, 5, 0, "random"),
    "bf16_logits": (2, 4, 64, 4, 1, "bf16"),
    "paper_b512_v8192_root": (1, 512, 8192, 512, 0, "root"),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("kernels") / "cases.json"
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(HERE), "--cases", str(out)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("case", list(CASES))
def test_kernels_select_what_the_reference_selects(results, case):
    r = results[case]
    assert r["parent"] and r["code"] and r["next_node"], r
    assert r["neg_inf_pattern"], r
    assert r["max_score_diff"] <= 2e-6, r  # fp32 rounding of the log-normalizer
    assert r["cand_flat"] and r["max_cand_value_diff"] <= 2e-6, r


@pytest.mark.parametrize("case", list(CASES))
def test_select_kernel_is_bit_exact_on_reference_lists(results, case):
    assert results[case]["select_exact"], results[case]


def test_codes_to_item_kernel(results):
    r = results["codes_to_item"]
    assert r["identical"] and r["found"] > 0 and r["missing"] > 0, r


def test_cases_cover_the_brief(results):
    """What the kernels actually ran (recorded by the run, not read from CASES): 1-3 users,
    one beam to the paper's 512, codebooks up to 8192, bf16 logits, B' beyond B and V."""
    shapes = [results[c]["shape"] for c in CASES]
    assert {s["users"] for s in shapes} >= {1, 2, 3}
    assert min(s["beams"] for s in shapes) == 1 and max(s["beams"] for s in shapes) == 512
    assert max(s["vocab"] for s in shapes) == 8192
    assert any(s["beam_out"] > s["beams"] for s in shapes)
    assert any(s["beam_out"] > s["vocab"] for s in shapes)
    assert {s["logits"] for s in shapes} == {"float32", "bfloat16"}
    paper = results["paper_b512_v8192_root"]
    assert paper["finite_rows"] == 512  # the root's best 512, every one a real child
    assert paper["shape"]["trie_nodes"] == 1


@pytest.fixture(scope="module")
def aot_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("aot") / "aot.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, str(HERE), "--aot", str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def test_aot_ptx_has_tensorrt_argument_order_and_assembles(aot_results):
    assert {r["arch"] for r in aot_results.values()} == {89, 90}  # Ada and Hopper
    for name, r in aot_results.items():
        assert r["ptxas_rc"] == 0, (name, r["ptxas_stderr"])
        assert r["entry_params"] == r["declared_params"], r  # no hidden Triton parameters left
        assert r["hidden_params_removed"] >= 1 and r["shared"] < 48 * 1024, r
        assert r["target"] == r["want_target"], r  # the PTX is for the build GPU's arch


def test_arch_and_ptx_isa_follow_the_build_gpu():
    import inspect

    from onerec_trt.plugins import aot

    assert inspect.signature(aot.compile_kernel).parameters["arch"].default is \
        inspect.Parameter.empty  # no silent sm_90a default
    assert [aot.arch_of(cc) for cc in ((8, 0), (8, 9), (9, 0), (10, 0), (12, 0))] == \
        [80, 89, 90, 100, 120]
    assert [aot.ptx_target(a) for a in (80, 89, 90, 100)] == ["sm_80", "sm_89", "sm_90a",
                                                              "sm_100a"]
    # PTX ISA: at least 8.0 (CUDA 12 drivers), more where the target needs it
    assert [aot.ptx_version_for(a) for a in (75, 80, 86, 89, 90, 100, 103, 120)] == \
        [80, 80, 80, 80, 80, 86, 88, 87]
    assert aot.ptx_version_for(150) is None  # newer than the table: the newest ptxas knows


def test_triton_version_is_checked():
    from onerec_trt.errors import UserError
    from onerec_trt.plugins import aot, spec

    assert spec.MIN_TRITON == (3, 3)
    for ok in ("3.3.0", "3.5.0", "3.9.0", "4.0.0+git1234"):
        aot.check_triton_version(ok)
    for old in ("3.0.0", "3.2.0", "2.3.1"):
        with pytest.raises(UserError, match=r"Triton .* is too old .* Triton >= 3\.3"):
            aot.check_triton_version(old)


def test_shared_memory_above_48_kib_is_refused():
    from onerec_trt.errors import UserError
    from onerec_trt.plugins import aot

    assert aot.SHARED_MEMORY_LIMIT == 48 * 1024
    aot.check_shared_memory("TrieBeamExpand", 48 * 1024, {"KP": 4096})
    with pytest.raises(UserError, match=r"TrieBeamExpand: .* needs 49153 bytes of shared memory "
                                        r"per block, above the 49152 bytes \(48 KiB\)"):
        aot.check_shared_memory("TrieBeamExpand", 48 * 1024 + 1, {"KP": 8192})


def test_tensorrt_and_the_device_check_launch_the_same_way():
    """aot_impl (tensorrt_plugins) and scripts/device_plugins.py take grid and int32 arguments
    from the same functions, which match the Triton launchers in kernels.py."""
    from onerec_trt.plugins import aot, tensorrt_plugins

    assert aot.expand_launch(2, 3, 16, 1, 4) == ((2, 3), [3, 16, 1, 4])
    assert aot.select_launch(2, 3, 16, 1, 4, 5) == ((2,), [3, 16, 1, 4, 5])
    assert aot.codes_launch(300, 3, lambda a, b: -(-a // b)) == ((3,), [300, 3])
    registration = Path(tensorrt_plugins.__file__).read_text()
    device = (HERE.parents[2] / "scripts" / "device_plugins.py").read_text()
    for fn in ("expand_launch", "select_launch", "codes_launch"):
        assert fn in registration and f"aot.{fn}(" in device
    for plugin in ("TrieBeamExpand", "TrieBeamSelect", "CodesToItem"):
        assert f'aot.compile_kernel("{plugin}"' in device
    assert "arch=arch" in registration and "arch=90" not in registration + device


# ------------------------------------------------------------------ subprocess side

def _trie(v: int, items: int, seed: int, kind: str = ""):
    import numpy as np

    from onerec_trt.model.trie import Trie
    from onerec_trt.plugins.packed import PackedTrie

    if kind == "childless":  # odd level-1 nodes have no children (not a trie of items)
        counts = np.array([0 if j % 2 else 2 for j in range(v)])
        ptr1 = np.concatenate([[0], np.cumsum(counts)])
        return PackedTrie.from_csr(
            [np.array([0, v]), ptr1, np.arange(ptr1[-1] + 1)],
            [np.arange(v), np.tile([1, 3], v // 2), np.zeros(ptr1[-1], dtype=np.int64)],
            np.arange(1, ptr1[-1] + 1), [v] * 3)
    rng = np.random.default_rng(seed)
    codes = np.unique(rng.integers(0, v, (items, 3)), axis=0)
    return PackedTrie.from_trie(Trie.from_codes(codes, np.arange(1, len(codes) + 1), [v] * 3))


def _inputs(trie, n, b, v, step, kind, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, b, v, generator=g)
    scores = -torch.rand(n, b, generator=g).sort(1, descending=True)[0] * 4 - 1
    node = torch.randint(0, trie.nodes(step), (n, b), generator=g)
    if kind in ("root", "root_ties"):
        scores[:, 1:] = float("-inf")
        scores[:, 0] = 0.0
    if kind in ("ties", "root_ties"):  # few distinct values; equal rows, scores and nodes
        logits = logits[:, :1].mul(2).round().expand(n, b, v).contiguous()
    if kind == "ties":
        scores[:] = -2.0
        node[:, 1::2] = node[:, :1]
    if kind == "childless":
        node[:, ::2] = node[:, ::2] // 2 * 2 + 1  # half the beams sit on childless nodes
    if kind == "edge":
        scores[:, -1] = float("-inf")
        node[:, 0] = -1
        node[:, 2] = trie.nodes(step) + 4
    if kind == "dead":
        scores[:] = float("-inf")
    return logits.bfloat16() if kind == "bf16" else logits, scores, node


def _compare_case(n, b, v, k, step, kind, seed) -> dict:
    import torch

    from onerec_trt.plugins import kernels, torch_ops

    trie = _trie(v, 20000 if v >= 1024 else 400, seed, kind)
    logits, scores, node = _inputs(trie, n, b, v, step, kind, seed)
    t = tuple(torch.from_numpy(trie.arrays()[x]) for x in ("indptr", "child_code", "offsets"))
    ref = torch_ops.trie_beam_step(logits, scores, node, *t, step, k)
    ref_cand = torch_ops.trie_beam_expand(logits, scores, node, *t, step, k)
    cand = kernels.trie_beam_expand(logits, scores, node, *t, step, k)
    out = kernels.trie_beam_select(cand, node, *t, step, k, v)
    exact = kernels.trie_beam_select(ref_cand, node, *t, step, k, v)
    low = torch_ops.LOW32
    finite = torch.isfinite(ref[0])
    vals, _ = torch_ops.decode_keys(cand)
    ref_vals, _ = torch_ops.decode_keys(ref_cand)
    both = torch.isfinite(ref_vals)
    return {
        "parent": torch.equal(out[1], ref[1]), "code": torch.equal(out[2], ref[2]),
        "next_node": torch.equal(out[3], ref[3]),
        "neg_inf_pattern": torch.equal(torch.isinf(out[0]), torch.isinf(ref[0])),
        "max_score_diff": float((out[0] - ref[0])[finite].abs().max()) if finite.any() else 0.0,
        "cand_flat": torch.equal(cand & low, ref_cand & low),
        "max_cand_value_diff": float((vals - ref_vals)[both].abs().max()) if both.any() else 0.0,
        "select_exact": all(torch.equal(a, c) for a, c in zip(exact, ref, strict=True)),
        "finite_rows": int(finite.sum()),
        "shape": {"users": int(logits.shape[0]), "beams": int(logits.shape[1]),
                  "vocab": int(logits.shape[2]), "beam_out": int(out[0].shape[1]),
                  "logits": str(logits.dtype).removeprefix("torch."),
                  "trie_nodes": int(trie.nodes(step))},
    }


def _codes_case() -> dict:
    import torch

    from onerec_trt.plugins import kernels, torch_ops

    trie = _trie(8, 300, 5)
    a = {x: torch.from_numpy(y) for x, y in trie.arrays().items()}
    codes = torch.randint(-1, 9, (3, 40, 3), generator=torch.Generator().manual_seed(1))
    codes[0, :4] = torch.tensor([0, 0, 0])  # likely-present prefixes mixed in
    args = (a["indptr"], a["child_code"], a["offsets"], a["leaf_item"])
    ref = torch_ops.codes_to_item(codes, *args)
    got = kernels.codes_to_item(codes, *args)
    return {"identical": torch.equal(ref, got), "found": int((ref > 0).sum()),
            "missing": int((ref == -1).sum())}


def _run_cases(path: str) -> None:
    results = {}
    for i, (name, (n, b, v, k, step, kind)) in enumerate(CASES.items()):
        t0 = time.perf_counter()
        results[name] = _compare_case(n, b, v, k, step, kind, seed=i)
        print(f"{name}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    results["codes_to_item"] = _codes_case()
    Path(path).write_text(json.dumps(results))


def _run_aot(path: str) -> None:
    import re
    import tempfile

    import triton

    from onerec_trt.plugins.aot import PARAMS, compile_kernel, ptx_target

    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    configs = {"TrieBeamExpand": dict(beam_out=8, vocab=64, logits_dtype="bfloat16"),
               "TrieBeamSelect": dict(beam_out=8, vocab=64, beams=8), "CodesToItem": {}}
    results = {}
    for arch in (89, 90):  # Ada (FP8 starts there) and Hopper
        for name, kw in configs.items():
            k = compile_kernel(name, arch=arch, **kw)
            entry = re.search(rf"\.entry\s+{k.name}\s*\((.*?)\)", k.ptx, re.S).group(1)
            target = re.search(r"^\.target\s+(\w+)", k.ptx, re.M).group(1)
            with tempfile.TemporaryDirectory() as tmp:
                src = Path(tmp) / "k.ptx"
                src.write_text(k.ptx)
                proc = subprocess.run([str(ptxas), f"-arch={target}", str(src), "-o",
                                       str(Path(tmp) / "k.cubin")], capture_output=True,
                                      text=True)
            results[f"{name}@{arch}"] = {
                "arch": arch, "target": target, "want_target": ptx_target(arch),
                "ptxas_rc": proc.returncode, "ptxas_stderr": proc.stderr[-500:],
                "entry_params": entry.count(".param"), "declared_params": len(PARAMS[name]),
                "hidden_params_removed": k.hidden_params_removed, "shared": k.shared}
    Path(path).write_text(json.dumps(results))


if __name__ == "__main__":
    {"--cases": _run_cases, "--aot": _run_aot}[sys.argv[1]](sys.argv[2])

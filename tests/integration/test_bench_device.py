"""The GPU evidence's parts that run on a CPU: GEMM shapes, FP8 linears, beam steps, the
synthetic catalogue, the scaling sweep and the device script's dry run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import REPO, random_histories, tiny_model
from onerec_trt.bench.gpu_e2e import Fp8Linear, input_amax, to_fp8
from onerec_trt.bench.gpu_gemm import request_gemms
from onerec_trt.bench.scaling import ScalingOptions, plot_scaling, run_scaling, scaling_markdown
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.generate import Generator
from onerec_trt.model.synthetic import (
    csr_bytes,
    dense_table_bytes,
    random_codes,
    random_model,
    synthetic_ids,
)
from onerec_trt.roofline import onerec_ops


@pytest.mark.parametrize("preset,beam", [("small", 20), ("paper", 512)])
def test_request_gemms_are_the_rooflines_gemms(preset, beam):
    cfg = ModelConfig.from_preset(preset)
    gemms = request_gemms(cfg, 3, beam)
    ops = [op for op in onerec_ops(cfg, 3, beam) if op.kind == "gemm"]
    assert sum(g.count for g in gemms) == len(ops)
    assert sum(2 * g.m * g.k * g.n * g.count for g in gemms) == sum(op.flops for op in ops)
    layers = {op.layer for op in ops}
    assert all(g.layer in layers for g in gemms)  # calibration names exist in the model


def test_synthetic_catalogue_and_random_model():
    codes = random_codes(500, [8, 8, 16], seed=1)
    assert len(np.unique(codes, axis=0)) == 500
    assert codes.min() == 0 and (codes.max(axis=0) < [8, 8, 16]).all()
    ids = synthetic_ids(500, [8, 8, 16])
    assert ids.trie.nodes(3) == 500 and ids.num_items == 500
    assert dense_table_bytes(ids.trie) == 8 * (1 * 8 + ids.trie.nodes(1) * 8
                                               + ids.trie.nodes(2) * 16)
    nodes = [ids.trie.nodes(t) for t in range(4)]
    assert csr_bytes(ids.trie) == 8 * (sum(n + 1 for n in nodes[:3]) + sum(nodes[1:]) + 500)
    sparse = synthetic_ids(500, [64, 64, 64]).trie  # a sparse catalogue: CSR is far smaller
    assert 10 * csr_bytes(sparse) < dense_table_bytes(sparse)
    cfg = ModelConfig.from_preset("tiny", num_items=500, codebook_sizes=[8, 8, 16])
    model = random_model(cfg, ids, dtype=torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16
    assert float(model.context.item_emb.weight[0].abs().max()) == 0.0
    assert float(model.norm.weight.float().mean()) == 1.0
    std = float(model.blocks[0].ffn.up.weight.float().std())
    assert 0.015 < std < 0.025
    with pytest.raises(ValueError):
        random_codes(100, [4, 4], seed=0)


def test_fp8_linears_are_real_fp8_gemms():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32, bias=False).to(torch.bfloat16)
    x = torch.randn(40, 64).to(torch.bfloat16)
    fp8 = Fp8Linear(linear, float(x.abs().max()))
    assert fp8.weight8.dtype == torch.float8_e4m3fn
    ref, got = linear(x).float(), fp8(x).float()
    rel = float((got - ref).norm() / ref.norm())
    assert 1e-3 < rel < 0.1  # FP8 rounding is visible, and nothing worse than it
    model = tiny_model().to(torch.bfloat16)
    history = random_histories(6, 20, 40, seed=1)
    generator = Generator(model, 8, 8, "csr")
    amax = input_amax(model, lambda: generator(history))
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert sorted(amax) == sorted(linears)
    assert to_fp8(model, amax) == len(linears)
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    items, _, _ = generator(history)
    assert items.shape == (6, 8) and (items > 0).all()


def test_scaling_sweep_table_and_plot(tmp_path):
    cfg = ModelConfig.from_preset("tiny", num_items=60, codebook_sizes=[4, 4, 8]).to_dict()
    opts = ScalingOptions(config=cfg, beam=6, users=3, reps=2, progress=False,
                          axes={"beam": [3, 6], "catalogue": [(40, 8), (300, 32)]},
                          max_table_mb=0.05)
    result = run_scaling(opts)
    rows = {(r["axis"], str(r["value"])): r for r in result["points"]}
    assert rows[("beam", "6")]["beam"] == 6 and rows[("beam", "3")]["reference_ms"] > 0
    big = rows[("catalogue", "[300, 32]")]
    assert big["dense_tables_mb"] > 0.05 and "reference_ms" not in big
    assert "why the csr and plugin" in big["reference_skipped"] and big["plugin_ms"] > 0
    assert big["csr_ms"] > 0
    assert rows[("catalogue", "[40, 8]")]["items"] == 40
    md = "\n".join(scaling_markdown(result))
    assert "| catalogue | [300, 32] |" in md and "not run" in md
    plot_scaling(result, tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"


def test_device_script_dry_run(tiny_pipeline, tmp_path):
    calib = tiny_pipeline / "fp8" / "calibration.json"
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "device_bench.py"), "--dry-run",
                          "--out", str(tmp_path), "--calibration", str(calib)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "end-to-end generation, tiny preset" in run.stdout
    result = json.loads((tmp_path / "device_bench.json").read_text())
    assert result["roofline"]["source"] == "onerec_trt.roofline"
    assert "CPU" in result["note"]
    points = result["gemm"]["presets"]["small"]["points"]
    assert [p["users"] for p in points] == [1, 2]
    gemms = points[0]["gemms"]
    assert all(g["fp8_rel_error"] < 0.1 for g in gemms)
    assert any(g["scale_source"]["input"] == "calibration" for g in gemms)
    assert points[0]["totals"]["roofline_speedup"] > 1
    e2e = result["e2e"]
    assert e2e["fp8_linears"] == 23 and set(e2e["comparison"]) == {"2", "4"}
    assert e2e["comparison"]["2"]["roofline_speedup"] > 1
    assert "csr step" in e2e["beam_step"]


TRITON_CHECK = """
import sys, torch
sys.path.insert(0, {tests!r})
from helpers import tiny_model, random_histories
from onerec_trt.model.generate import beam_search
m = tiny_model(); h = random_histories(3, 20, 40)
ref = beam_search(m, h, 6, 6, step="dense")
out = beam_search(m, h, 6, 6, step="triton")
print("SAME" if (out.items == ref.items).all() else "DIFFERENT")
"""


def test_plugin_triton_path_under_the_interpreter():
    """The GPU e2e's plugin path (the generation loop's ``triton`` step), on the CPU."""
    pytest.importorskip("triton")
    run = subprocess.run([sys.executable, "-c", TRITON_CHECK.format(tests=str(REPO / "tests"))],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TRITON_INTERPRET": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("SAME")

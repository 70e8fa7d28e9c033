"""The analysis stage's parts: FP8 E4M3 round trips, statistics, activation capture, roofline
counts and the verdict logic (tiny real models; the stage end to end is test_analysis_stage)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from helpers import random_histories, tiny_model
from onerec_trt.analysis.capture import LinearInputs
from onerec_trt.analysis.compare import compare_models, exclusions
from onerec_trt.analysis.fp8 import fp8_round_trip, gemm_output_sqnr, round_trip_errors, sqnr_db
from onerec_trt.analysis.stats import tensor_stats
from onerec_trt.errors import UserError
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.generate import Generator
from onerec_trt.model.onerec import OneRecModel
from onerec_trt.roofline import (
    dcn_ops,
    gemm,
    load_gpus,
    onerec_ops,
    op_time,
    predict,
    sweep,
)


def test_fp8_round_trip_lands_on_the_e4m3_grid():
    # amax 448 gives scale 1: values round to E4M3 numbers (3 mantissa bits, subnormals 2^-9)
    x = torch.tensor([448.0, 0.3, 1.0, -2.6, 2.0**-9, 2.0**-11, 17.0])
    got = fp8_round_trip(x)
    assert got.tolist() == [448.0, 0.3125, 1.0, -2.5, 2.0**-9, 0.0, 16.0]
    # per-channel: every row reaches its own absmax exactly, and tiny rows keep their values
    w = torch.tensor([[1000.0, 3.0], [0.001, 0.0005]])
    rows = fp8_round_trip(w, channel_axis=0)
    assert rows[0, 0] == 1000.0 and rows[1, 0] == pytest.approx(0.001, rel=1e-6)
    assert fp8_round_trip(w)[1].abs().max() < 0.001  # per-tensor: the small row is crushed


def test_fp8_errors_of_a_gaussian_and_of_an_outlier_tensor():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 512, generator=g)
    err = round_trip_errors(x, channel_axis=0)
    # E4M3 keeps 3 mantissa bits: about 31 dB on a well-scaled Gaussian, either scaling
    assert 30.0 < err["per_tensor"]["sqnr_db"] < 33.0
    assert 0.01 < err["per_tensor"]["rel_error"] < 0.05
    assert sqnr_db(x, x) == math.inf
    # one huge row: per-tensor scaling flushes the other rows' values to zero, per-channel not
    x[0] *= 1e5
    err = round_trip_errors(x, channel_axis=0)
    assert err["per_channel"]["sqnr_db"] > 30.0
    small = x[1:]
    crushed = sqnr_db(small, fp8_round_trip(x)[1:])
    assert crushed < 10.0
    w = torch.randn(64, 512, generator=g) * 0.02
    assert 26.0 < gemm_output_sqnr(torch.randn(100, 512, generator=g), w) < 32.0


def test_tensor_stats_of_known_distributions():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, 1000, generator=g) * 3 + 1
    s = tensor_stats(x, channel_axis=-1)
    assert s["mean"] == pytest.approx(1.0, abs=0.02)
    assert s["variance"] == pytest.approx(float(x.double().var(unbiased=False)), rel=1e-5)
    assert s["kurtosis"] == pytest.approx(3.0, abs=0.05)
    assert s["beyond_6sigma"] == 0.0 and s["absmax"] == float(x.abs().max())
    assert s["channel_absmax_ratio"] < 2.0
    x[:, 7] *= 50  # one outlier feature channel
    s = tensor_stats(x, channel_axis=-1)
    assert s["channel_absmax_ratio"] > 30 and s["kurtosis"] > 50 and s["beyond_6sigma"] > 1e-4


def test_capture_masks_padding_and_keeps_a_bounded_uniform_sample():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x = torch.randn(5, 6, 4)
    mask = torch.rand(5, 6) > 0.4
    with LinearInputs(model, masked=lambda name: name == "0") as cap:
        cap.mask = mask
        model(x)
    inputs = cap.inputs()
    assert torch.equal(inputs["0"], x[mask])  # padding rows dropped, order kept
    assert inputs["2"].shape == (30, 3) and cap.rows_seen["2"] == 30
    with LinearInputs(model, max_rows=50, seed=1) as cap:
        for _ in range(10):
            model(torch.randn(20, 4))
    assert cap.inputs()["0"].shape == (50, 4) and cap.rows_seen["0"] == 200
    with LinearInputs(model, masked=lambda name: name == "0") as cap:
        cap.mask = torch.ones(2, 2, dtype=torch.bool)
        with pytest.raises(ValueError, match="does not match the token mask"):
            model(x)
    assert not model[0]._forward_pre_hooks  # hooks removed on exit


def _gemm_flops_of_a_real_run(model, users, beam, history):
    """2 * rows * in * out summed over every nn.Linear call of one generation request."""
    total = [0.0]

    def hook(module, args):
        total[0] += 2.0 * args[0].numel() * module.out_features  # rows * in * out

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()
               if isinstance(m, nn.Linear)]
    with torch.no_grad():
        Generator(model, beam, min(beam, 10))(history)
    for h in handles:
        h.remove()
    return total[0]


def test_roofline_gemms_are_the_model_gemms():
    model = tiny_model(num_items=40, codebook=4)
    users, beam = 3, 6
    hist = random_histories(users, model.cfg.max_history, 40, seed=2)
    ops = onerec_ops(model.cfg, users, beam)
    layers = {n for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert {op.layer for op in ops if op.kind == "gemm"} == layers
    counted = sum(op.flops for op in ops if op.kind == "gemm")
    assert counted == _gemm_flops_of_a_real_run(model, users, beam, hist)
    excluded = onerec_ops(model.cfg, users, beam, excluded=frozenset({"heads.0"}))
    head = next(op for op in excluded if op.layer == "heads.0")
    assert not head.fp8 and head.bytes_fp8 == head.bytes_bf16


def test_roofline_of_the_paper_preset():
    cfg = ModelConfig.from_preset("paper")
    with torch.device("meta"):
        model = OneRecModel(cfg)
    weights = {n: m.weight.numel() for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    gemms = [op for op in onerec_ops(cfg, 1, 1, history=1) if op.kind == "gemm"]
    assert {op.layer for op in gemms} == set(weights)
    assert all(op.flops == 2 * weights[op.layer] for op in gemms)  # one row: 2 FLOPs a weight
    assert 0.6e9 < sum(weights.values()) < 0.8e9  # + 0.3B item embeddings: the ~1B preset
    gpus = load_gpus()
    h100, a100 = gpus["H100-SXM"], gpus["A100"]
    p = predict(onerec_ops(cfg, 32, 512), h100)
    assert 1.0 < p["predicted_speedup"] < 2.0 and p["compute_bound_share_bf16"] > 0.5
    assert predict(onerec_ops(cfg, 32, 512), a100)["predicted_speedup"] is None
    s = sweep(lambda n, b: onerec_ops(cfg, n, b), 512, h100)
    shares = [pt["compute_bound_share_bf16"] for pt in s["points"]]
    assert shares[0] < 0.5 and s["compute_bound_from_rows"] is not None
    assert all(pt["rows"] == pt["users"] * pt["beam"] for pt in s["points"])


def test_roofline_arithmetic_by_hand():
    gpu = {"bf16_tflops": 100.0, "fp8_tflops": 200.0, "memory_tbs": 1.0}
    op = gemm("g", 1000, 1000, 1000, "g")  # 2 GFLOP, 6 MB bf16 / 4 MB fp8
    assert op.flops == 2e9 and op.bytes_bf16 == 6e6 and op.bytes_fp8 == 4e6
    assert op_time(op, gpu, "bf16") == (pytest.approx(2e-5), "compute")
    assert op_time(op, gpu, "fp8") == (pytest.approx(1e-5), "compute")
    thin = gemm("t", 1, 1000, 1000, "t")  # a GEMV: memory-bound, FP8 halves the weight bytes
    assert op_time(thin, gpu, "bf16")[1] == "memory"
    assert op_time(thin, gpu, "bf16")[0] / op_time(thin, gpu, "fp8")[0] == pytest.approx(
        (2 * 1000 + 2e6 + 2 * 1000) / (1000 + 1e6 + 2 * 1000))
    dcn = dcn_ops(type("C", (), {"embedding_dim": 16, "cross_layers": 3,
                                 "hidden": (256, 128)})(), 7, 2, 10)
    assert [op.name for op in dcn] == ["embed", "cross.0", "cross.1", "cross.2", "deep.0",
                                       "deep.2", "out", "topk"]


def test_unknown_gpu_is_one_clear_error():
    with pytest.raises(UserError, match="unknown GPU 'B200'") as exc:
        load_gpus(["H200", "B200"])
    assert "H100-SXM" in str(exc.value)
    assert list(load_gpus(["h200"])) == ["H200"]


def _summary(wvar, wabs, wkurt, avar, aabs, akurt, evar=0.0, eabs=0.0):
    return {"weights": {"variance_max": wvar, "absmax_max": wabs, "kurtosis_median": wkurt},
            "activations": {"variance_max": avar, "absmax_max": aabs, "kurtosis_median": akurt},
            "embeddings": {"variance_max": evar, "absmax_max": eabs}}


def test_verdict_follows_the_numbers():
    lm = _summary(0.01, 1.0, 4.0, 0.5, 20.0, 20.0)
    onerec = _summary(0.02, 0.8, 3.5, 0.8, 15.0, 15.0)
    wild = _summary(1e7, 5e3, 50.0, 1e6, 1e4, 100.0)
    tame = _summary(0.02, 0.9, 3.0, 1.0, 10.0, 12.0)
    holds = compare_models({"onerec": onerec, "lm": lm, "traditional": wild})
    assert holds["holds"] and holds["nearer_lm_count"] == 6
    assert holds["verdict"].startswith("holds")
    fails = compare_models({"onerec": onerec, "lm": lm, "traditional": tame})
    assert fails["holds"] is False and not fails["paper_markers"]["traditional_wild"]
    assert fails["verdict"].startswith("does not hold")
    assert compare_models({"onerec": onerec})["holds"] is None


def test_exclusions_name_layers_below_the_threshold():
    def layer(w, a, out):
        return {"weight": {"fp8": {"per_tensor": {"sqnr_db": w}}},
                "activation": {"fp8": {"per_tensor": {"sqnr_db": a}}}, "gemm_sqnr_db": out}

    layers = {"a": layer(31.0, 31.0, 29.0), "b": layer(31.0, 12.0, 25.0),
              "c": layer(31.0, 31.0, 19.0)}
    got = exclusions(layers, 20.0)
    assert got["exclude"] == ["b", "c"]
    assert "input SQNR 12.0 dB" in got["reasons"]["b"] and "GEMM output" in got["reasons"]["c"]
    assert exclusions(layers, 10.0)["exclude"] == []
    assert np.isfinite(got["threshold_db"])

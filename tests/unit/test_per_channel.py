"""Per-channel FP8 weights (one scale per output feature): the ModelOpt config, the torch fake
quantization on a layer whose channels differ widely, and the policy field that records it."""

import copy

import numpy as np
import pytest
import torch

from helpers import random_histories, tiny_model
from onerec_trt.errors import UserError
from onerec_trt.metrics import overlap
from onerec_trt.model.generate import Generator
from onerec_trt.quantize.policy import Policy
from onerec_trt.quantize.ptq import (
    calibrate,
    fp8_config,
    linear_layers,
    per_tensor_for_export,
    quantizer_amax,
    set_bf16_layers,
)

SPREAD = "blocks.0.ffn.up"  # the layer whose output channel 0 is made LOUD times larger
# E4M3 is a float format: a per-tensor scale set by one loud channel costs the others little
# until they fall below its normal range (2^-6 of the scale unit, 448 / 2^-6 = 28,672x under
# the loud one). At 100x the two scalings give the same overlap on this model (0.90 and 0.89
# with every GEMM in FP8, noise); at 10^4 the weight error grows 1.6x; at 10^5 most quiet
# weights round to zero or the smallest subnormal.
LOUD = 1e5


def _weight_rules(cfg):
    return [r for r in cfg["quant_cfg"] if r.get("quantizer_name") == "*weight_quantizer"]


def test_per_channel_config_sets_axis_0_on_weights_only():
    tensor, channel = fp8_config("max"), fp8_config("max", "per-channel")
    assert [r["cfg"]["axis"] for r in _weight_rules(tensor)] == [None]
    assert [r["cfg"]["axis"] for r in _weight_rules(channel)] == [0]
    inputs = [r for r in channel["quant_cfg"] if r.get("quantizer_name") == "*input_quantizer"]
    assert [r["cfg"]["axis"] for r in inputs] == [None]  # activations stay per-tensor


@pytest.fixture(scope="module")
def spread():
    """A tiny model with one output channel of ``SPREAD`` LOUD times larger than the rest and
    the matching input column of the next GEMM LOUD times smaller (the same function: an
    outlier channel the model compensates, as trained models have), and its histories."""
    model = tiny_model()
    modules = dict(model.named_modules())
    with torch.no_grad():
        modules[SPREAD].weight[0] *= LOUD
        modules["blocks.0.ffn.down"].weight[:, 0] /= LOUD
    return model.to(torch.bfloat16), random_histories(96, 20, 40, seed=2)


def _calibrated(model, hist, scales):
    model = copy.deepcopy(model)
    generator = Generator(model, 10, 10).eval()
    calibrate(model, lambda: generator(hist[:32]), "max", scales)
    return generator


def test_per_channel_weights_follow_a_layer_with_spread_channels(spread):
    model, hist = spread
    tensor, channel = (_calibrated(model, hist, s) for s in ("per-tensor", "per-channel"))
    layer = dict(channel.model.named_modules())[SPREAD]
    amax = quantizer_amax(channel.model)[f"{SPREAD}.weight_quantizer"]
    assert isinstance(amax, list) and len(amax) == layer.out_features
    assert max(amax) > 50 * sorted(amax)[len(amax) // 2]  # the one loud channel

    def weight_error(generator):
        mod = dict(generator.model.named_modules())[SPREAD]
        with torch.no_grad():
            fake = mod.weight_quantizer(mod.weight.float())
        return float(((fake - mod.weight.float())[1:]).abs().mean())

    # E4M3 is a float: a 100x larger scale costs the quiet channels only their smallest
    # values (those pushed into subnormals), so the gain is real but small
    assert weight_error(channel) < weight_error(tensor) / 5  # the quiet channels keep bits
    # torch fake quantization of that layer's weights alone (its input and every other GEMM in
    # bf16), against the whole model in bf16: the difference is the weight scaling only
    reference = _items(tensor, hist, bf16=linear_layers(tensor.model))
    overlap_tensor, overlap_channel = (float(overlap(reference, _items(g, hist), 10).mean())
                                       for g in (tensor, channel))
    assert overlap_channel >= overlap_tensor + 0.03 and overlap_channel > 0.95  # 0.98 vs 0.93


def _items(generator, hist, bf16=None) -> np.ndarray:
    others = [n for n in linear_layers(generator.model) if n != SPREAD]
    set_bf16_layers(generator.model, bf16 if bf16 is not None else others)
    dict(generator.model.named_modules())[SPREAD].input_quantizer.disable()
    with torch.no_grad():
        return generator(hist[32:])[0].numpy()


def test_export_sees_a_scalar_amax_and_gets_the_channels_back(spread):
    model, hist = spread
    generator = _calibrated(model, hist, "per-channel")
    quantizer = dict(generator.model.named_modules())[SPREAD].weight_quantizer
    before = quantizer.amax.clone()
    with per_tensor_for_export(generator) as scales:
        assert quantizer.amax.numel() == 1 and float(quantizer.amax) == float(before.max())
        assert scales[f"model.{SPREAD}.weight"].shape == (before.numel(),)
    assert torch.equal(quantizer.amax, before)


def test_policy_records_weight_scales_and_refuses_unknown_ones():
    policy = Policy.from_json({"bf16_layers": [], "weight_scales": "per-channel"}, "p.json")
    assert policy.weight_scales == "per-channel"
    assert Policy.from_json({"bf16_layers": []}, "p.json").weight_scales == "per-tensor"
    assert Policy.from_json(policy.to_json(), "p.json") == policy
    with pytest.raises(UserError, match="unknown weight_scales 'per-row'"):
        Policy.from_json({"bf16_layers": [], "weight_scales": "per-row"}, "p.json")


def test_a_per_channel_calibration_file_is_checked_value_by_value():
    from onerec_trt.quantize.stage import checked_amax

    assert checked_amax({"w": [1, 2.5], "x": 3}, "f") == {"w": [1.0, 2.5], "x": 3.0}
    for bad in ([1.0, float("nan")], [], [1.0, "2"], [1.0, -1.0]):
        with pytest.raises(UserError, match="the amax of w is"):
            checked_amax({"w": bad}, "calibration file f")


def test_an_unknown_weight_scaling_is_refused_before_any_work(tmp_path):
    from onerec_trt.quantize import QuantizeOptions, quantize

    with pytest.raises(UserError, match="unknown --weight-scales 'per-row'"):
        quantize(QuantizeOptions(out=str(tmp_path / "out"), weight_scales="per-row"))
    assert not (tmp_path / "out").exists()


def test_an_all_zero_output_channel_gets_a_positive_scale_and_stays_zero():
    """A zero row (a tied head's padding token) calibrates to amax 0, which no graph may hold:
    it takes the layer's smallest positive amax, and still quantizes to exact zeros."""
    model = tiny_model().to(torch.bfloat16)
    layer = dict(model.named_modules())[SPREAD]
    with torch.no_grad():
        layer.weight[3] = 0.0
    hist = random_histories(32, 20, 40, seed=3)
    generator = _calibrated(model, hist, "per-channel")
    amax = quantizer_amax(generator.model)[f"{SPREAD}.weight_quantizer"]
    assert min(amax) > 0 and amax[3] == min(a for i, a in enumerate(amax) if i != 3)
    quantized = dict(generator.model.named_modules())[SPREAD]
    with torch.no_grad():
        assert torch.all(quantized.weight_quantizer(quantized.weight)[3] == 0)

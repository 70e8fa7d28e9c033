"""FP8 post-training quantization with ModelOpt's torch API (the primary path).

Why the torch path (mtq.quantize, then export) rather than ModelOpt's ONNX PTQ: precision stays
where the model puts it. The ONNX PTQ converts the whole graph, beam-score path included, to the
high-precision dtype (bf16 scores tie constantly) and excludes GEMMs it sees as GEMV when it
calibrates one row at a time (FACTS). Here the quantizers sit on every ``nn.Linear`` of the
context processor and the decoder (the GEMMs), calibration runs the real generation (beams
included) on real users at serving batch shapes, embeddings and the beam logic are never
quantized, and the exported Q/DQ nodes are rewritten to standard ONNX (``qdq.py``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from onerec_trt.fp8_format import OUTPUT_HEADS
from onerec_trt.progress import quiet_library_bars

# The default exclusion policy (measured on the shipped model, docs/export-quantize.md): the
# output heads (the lm_head of this model; ModelOpt's own LLM default keeps lm_head in high
# precision) and the context K/V projections (computed once per request, read by every beam
# and every decoder layer of a group) stay bf16. Both are a small share of a request's FLOPs.
DEFAULT_EXCLUDE = {
    OUTPUT_HEADS[0]: "default policy: output heads stay bf16 (like ModelOpt's lm_head)",
    r"kv_proj": "default policy: context K/V projections stay bf16 (shared by all beams)",
    # the same policy on imported transformers models (model/hf): the LM head, and T5's
    # cross-attention K/V (computed once per request from the encoder, read by every beam)
    OUTPUT_HEADS[1]: "default policy: the LM head stays bf16 (ModelOpt's LLM default)",
    r"EncDecAttention\.[kv]$": "default policy: cross-attention K/V projections stay bf16 "
                               "(shared by all beams)",
}


def _mtq():
    import warnings

    try:
        with warnings.catch_warnings():  # ModelOpt's HF path, unused here: a known mismatch
            warnings.filterwarnings("ignore", message=r"transformers .* is not tested with")
            import modelopt.torch.quantization as mtq
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from onerec_trt.errors import user_error

        raise user_error("quantize needs nvidia-modelopt",
                         f"pip install 'nvidia-modelopt[onnx]' ({exc})") from None
    return mtq


def linear_layers(model: nn.Module) -> list[str]:
    return [name for name, mod in model.named_modules() if isinstance(mod, nn.Linear)]


def excluded_layers(model: nn.Module, patterns: Iterable[str], names: Iterable[str],
                    default_policy: bool = True) -> dict[str, str]:
    """Layer -> reason, for layers matching the default policy, a user regex, or named by the
    analysis proposal."""
    reasons = {}
    names = set(names)
    compiled = [(re.compile(p), f"--exclude {p}") for p in patterns]
    if default_policy:
        compiled += [(re.compile(p), why) for p, why in DEFAULT_EXCLUDE.items()]
    for layer in linear_layers(model):
        for rx, why in compiled:
            if rx.search(layer):
                reasons[layer] = why
                break
        else:
            if layer in names:
                reasons[layer] = "exclusions file (analysis: FP8 error above threshold)"
    return reasons


def fp8_config(method: str, weight_scales: str = "per-tensor") -> dict:
    """ModelOpt's FP8 default (per-tensor E4M3 weights and inputs) on every ``nn.Linear``;
    ``weight_scales="per-channel"``: the weight quantizers get ``axis 0`` (per output feature).
    ModelOpt's own name rules for LLMs (``*lm_head*``, ``*router*``, ...) are dropped: which
    layers stay bf16 is this project's policy (``policy.py``, applied by ``set_bf16_layers``
    after calibration), and a search must be able to calibrate and try every GEMM."""
    cfg = copy.deepcopy(_mtq().FP8_DEFAULT_CFG)
    rules = cfg["quant_cfg"]
    if isinstance(rules, list):  # ModelOpt >= 0.4x: a list of rules, later ones win
        rules[:] = [r for r in rules if r.get("enable", True) or r.get("quantizer_name") == "*"
                    or "parent_class" in r]
        if weight_scales == "per-channel":
            for rule in rules:
                if rule.get("quantizer_name") == "*weight_quantizer" and "cfg" in rule:
                    rule["cfg"]["axis"] = 0
    elif weight_scales == "per-channel":  # pragma: no cover - ModelOpt < 0.4x: a dict
        rules["*weight_quantizer"]["axis"] = 0
    cfg["algorithm"] = method
    return cfg


def calibrate(model: nn.Module, run: Callable[[], None], method: str = "max",
              weight_scales: str = "per-tensor") -> nn.Module:
    """Insert FP8 quantizers and calibrate them by calling ``run()`` (the real generation)."""
    mtq = _mtq()
    with quiet_library_bars():  # ModelOpt's own tqdm (mse): no \r frames in logs
        model = mtq.quantize(model, fp8_config(method, weight_scales), lambda _model: run())
    if weight_scales == "per-channel":
        fill_zero_channels(model)
    return model


def fill_zero_channels(model: nn.Module) -> None:
    """A per-channel weight quantizer's all-zero output channels (e.g. a padding token's row
    of a tied LM head) calibrate to amax 0, a scale TensorRT and ONNX refuse. Any positive
    scale stores zeros exactly: they get the tensor's smallest positive amax (1.0 if none)."""
    for module in model.modules():
        quantizer = getattr(module, "weight_quantizer", None) if isinstance(
            module, nn.Linear) else None
        amax = getattr(quantizer, "amax", None) if quantizer is not None else None
        if amax is None or amax.numel() == 1 or bool((amax > 0).all()):
            continue
        positive = amax[amax > 0]
        fill = positive.min() if positive.numel() else torch.ones((), dtype=amax.dtype)
        filled = torch.where(amax > 0, amax, fill.to(amax.device))
        quantizer.reset_amax()
        quantizer.amax = filled.detach()


@contextmanager
def per_tensor_for_export(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """ModelOpt (0.47) exports E4M3 only with a scalar amax. Inside this context each
    per-channel weight quantizer holds its largest amax (the export writes a scalar scale);
    the yielded dict maps the weight's name in ``model.state_dict()`` to its per-channel scales
    (amax / 448, float32, one per output feature), which ``qdq.set_channel_scales`` puts back
    into the graph. The quantizers get their per-channel amax back on exit."""
    from onerec_trt.fp8_format import E4M3_MAX

    saved, scales = {}, {}
    for name, module in model.named_modules():
        quantizer = getattr(module, "weight_quantizer", None) if isinstance(
            module, nn.Linear) else None
        amax = getattr(quantizer, "amax", None) if quantizer is not None else None
        if amax is None or not quantizer.is_enabled or amax.numel() == 1:
            continue
        saved[name] = amax
        scales[f"{name}.weight" if name else "weight"] = amax.detach().float().reshape(
            -1) / E4M3_MAX
        quantizer.reset_amax()  # ModelOpt refuses an amax of another shape in place
        quantizer.amax = amax.detach().max().reshape(())
    try:
        yield scales
    finally:
        modules = dict(model.named_modules())
        for name, amax in saved.items():
            modules[name].weight_quantizer.reset_amax()
            modules[name].weight_quantizer.amax = amax


def set_bf16_layers(model: nn.Module, bf16_layers: Iterable[str]) -> None:
    """Turn the FP8 quantizers of the named ``nn.Linear`` layers off and every other layer's
    on: calibration covers every GEMM once, a policy then picks which run in FP8."""
    kept = set(bf16_layers)
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            for quantizer in (module.input_quantizer, module.weight_quantizer):
                quantizer.disable() if name in kept else quantizer.enable()


def quantizer_amax(model: nn.Module) -> dict[str, float | list[float]]:
    """Calibrated amax of every enabled quantizer: a float (per-tensor), or a list with one
    value per output channel (a per-channel weight quantizer)."""
    out: dict[str, float | list[float]] = {}
    for name, mod in model.named_modules():
        if name.endswith("_quantizer") and getattr(mod, "is_enabled", False):
            amax = getattr(mod, "amax", None)
            if amax is not None:
                amax = torch.as_tensor(amax).float()
                out[name] = float(amax.max()) if amax.numel() == 1 else amax.reshape(
                    -1).tolist()
    return out


def check_state(model: nn.Module) -> None:
    """Every enabled quantizer has an amax (a layer the calibration never ran is refused)."""
    from onerec_trt.errors import user_error

    for name, module in model.named_modules():
        if name.endswith("_quantizer") and getattr(module, "is_enabled", False) \
                and getattr(module, "amax", None) is None:
            raise user_error(f"{name} was never calibrated (the calibration run never called "
                             "its layer)", "keep the layer in bf16 with --exclude")


def load_amax(model: nn.Module, amax: dict[str, float | list[float]]) -> list[str]:
    """Set quantizer amax values from a calibration file (a list: per-channel, one value per
    output feature); returns the names it lacked."""
    missing = []
    modules = dict(model.named_modules())
    for name, mod in modules.items():
        if name.endswith("_quantizer") and getattr(mod, "is_enabled", False):
            if name not in amax:
                missing.append(name)
                continue
            value = torch.tensor(amax[name], dtype=torch.float32)
            mod.reset_amax()  # a per-channel file may meet a quantizer of another shape
            mod.amax = value.reshape(-1, 1) if value.dim() else value
    return missing

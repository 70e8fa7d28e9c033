"""FP8-aware training (``train --fp8-aware [SHARE]``): the last SHARE of the budgeted steps run
with ModelOpt's FP8 fake quantization (per-tensor E4M3 weights and inputs) on every GEMM but the
output heads, so the weights learn around the rounding of both.

``fit`` calls the phase at every step boundary (``after_step``); the phase starts once the run
reaches ``1 - SHARE`` of its end (the cosine's end, or ``max_steps``, re-read at every call: a
time budget moves it), calibrates amax (max) on the last few training batches, recalibrates
``RECALIBRATIONS - 1`` more times as the weights move, and keeps amax frozen for the last
``FROZEN_SHARE`` of the phase. Validation scores the bf16 graph (quantizers off: the model the
folder holds); only validations inside the phase may become the best state, and early stopping
may end the run only once amax is frozen (the phase's recalibrations done), so the written
model is one that trained in FP8. ``finish`` returns a plain copy of the
model (no quantizers, no amax) with the trained weights.
"""

from __future__ import annotations

import copy
import logging
import math
import re
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from onerec_trt.fp8_format import OUTPUT_HEADS

if TYPE_CHECKING:  # torch loads when a phase runs, not with the CLI's help
    import torch
    from torch import nn

log = logging.getLogger(__name__)

DEFAULT_SHARE = 0.25  # of the budgeted steps, at the end of the run
RECALIBRATIONS = 4  # amax calibrations in the phase, the first at its start
FROZEN_SHARE = 0.25  # the last part of the phase: amax frozen
CALIBRATION_BATCHES = 4  # the latest training batches each calibration runs


def output_heads(model: nn.Module) -> list[str]:
    """The ``nn.Linear`` layers FP8-aware training keeps in bf16."""
    from torch import nn

    rx = [re.compile(p) for p in OUTPUT_HEADS]
    return [name for name, mod in model.named_modules()
            if isinstance(mod, nn.Linear) and any(r.search(name) for r in rx)]


def quantize_but_heads(model: nn.Module, run: Callable[[], None]) -> tuple[list[str],
                                                                            list[str]]:
    """ModelOpt's FP8 fake quantization on every ``nn.Linear`` of ``model`` (amax by max over
    ``run()``), then the output heads' quantizers off: what FP8-aware training and QAD train
    under. -> (the FP8 layers, the output heads kept bf16)."""
    from torch import nn

    kept = output_heads(model)
    _mtq().quantize(model, _fp8_config(), lambda _m: run())
    fp8 = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and hasattr(mod, "weight_quantizer"):
            if name in kept:
                mod.input_quantizer.disable()
                mod.weight_quantizer.disable()
            else:
                fp8.append(name)
    return fp8, kept


def _mtq():
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"transformers .* is not tested with")
            import modelopt.torch.quantization as mtq
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from onerec_trt.errors import user_error

        raise user_error("--fp8-aware needs nvidia-modelopt",
                         f"pip install 'nvidia-modelopt[onnx]' ({exc})") from None
    return mtq


def _fp8_config() -> dict:
    """ModelOpt's FP8 default on every ``nn.Linear``, its own LLM name rules dropped (the output
    heads are this project's rule, applied after insertion)."""
    cfg = copy.deepcopy(_mtq().FP8_DEFAULT_CFG)
    rules = cfg["quant_cfg"]
    if isinstance(rules, list):  # ModelOpt >= 0.4x: a list of rules, later ones win
        rules[:] = [r for r in rules if r.get("enable", True) or r.get("quantizer_name") == "*"
                    or "parent_class" in r]
    cfg["algorithm"] = "max"
    return cfg


class NoFP8Phase:
    """``--fp8-aware`` off: every hook does nothing."""

    active = False

    def after_step(self, model: nn.Module, loss: Callable[[Any], torch.Tensor], batch: Any,
                   steps_done: int, end_step: int) -> None:
        pass

    @contextmanager
    def reference(self, model: nn.Module) -> Iterator[None]:
        yield

    def may_select(self) -> bool:
        return True

    def may_stop(self) -> bool:
        return True

    def tag(self, record: dict) -> None:
        pass

    def finish(self, model: nn.Module) -> nn.Module:
        return model

    def record(self) -> dict | None:
        return None


class FP8Phase(NoFP8Phase):
    """The FP8 phase of one run (see the module's docstring)."""

    def __init__(self, share: float):
        self.share = share
        self.active = False
        self.start_step: int | None = None
        self.steps = 0
        self.calibrations: list[int] = []  # the steps amax was (re)calibrated at
        self.layers: list[str] = []
        self.kept_bf16: list[str] = []
        self._frozen = False  # the run is past the phase's last recalibration step
        self._recent: deque = deque(maxlen=CALIBRATION_BATCHES)
        self._plain: nn.Module | None = None

    def _bounds(self, end_step: int) -> tuple[int, int, int]:
        """(start, last step that may recalibrate, interval) for a run ending at ``end_step``."""
        start = min(max(0, end_step - 1), math.floor(end_step * (1 - self.share)))
        length = max(1, end_step - start)
        freeze = end_step - math.floor(length * FROZEN_SHARE)
        interval = max(1, math.ceil((freeze - start) / RECALIBRATIONS))
        return start, freeze, interval

    def after_step(self, model, loss, batch, steps_done, end_step) -> None:
        self._recent.append(batch)
        if self.active:
            self.steps += 1
        start, freeze, interval = self._bounds(end_step)
        self._frozen = self.active and steps_done >= freeze
        if not self.active and steps_done >= start:
            self._enter(model, loss, steps_done)
        elif (self.active and steps_done < freeze
              and steps_done - self.calibrations[-1] >= interval):
            self._calibrate(model, loss, steps_done)

    def _enter(self, model: nn.Module, loss, steps_done: int) -> None:
        import torch

        self._plain = copy.deepcopy(model)
        with _evaluating(model), torch.no_grad():
            layers, self.kept_bf16 = quantize_but_heads(model, lambda: self._run(loss))
        self.layers.extend(layers)
        self.active, self.start_step = True, steps_done
        self.calibrations.append(steps_done)
        log.info(f"FP8-aware phase: step {steps_done:,}, {len(self.layers)} GEMMs in FP8 (fake "
                 f"quantization), {len(self.kept_bf16)} output head(s) in bf16")

    def _calibrate(self, model: nn.Module, loss, steps_done: int) -> None:
        import torch

        with _evaluating(model), torch.no_grad():
            _mtq().calibrate(model, "max", lambda _m: self._run(loss))
        self.calibrations.append(steps_done)

    def _run(self, loss) -> None:
        for batch in self._recent:
            loss(batch)

    def _quantizers(self, model: nn.Module) -> list[nn.Module]:
        modules = dict(model.named_modules())
        return [q for name in self.layers
                for q in (modules[name].input_quantizer, modules[name].weight_quantizer)]

    @contextmanager
    def reference(self, model: nn.Module) -> Iterator[None]:
        """The bf16 graph (every quantizer off) within the block: what validation scores."""
        quantizers = self._quantizers(model) if self.active else []
        for q in quantizers:
            q.disable()
        try:
            yield
        finally:
            for q in quantizers:
                q.enable()

    def may_select(self) -> bool:
        return self.active

    def may_stop(self) -> bool:
        return self._frozen

    def tag(self, record: dict) -> None:
        record["fp8_phase"] = self.active

    def finish(self, model: nn.Module) -> nn.Module:
        """A plain copy of ``model`` (its quantizers and amax left out), in eval mode."""
        if self._plain is None:
            return model
        state = {k: v for k, v in model.state_dict().items() if "_quantizer." not in k}
        self._plain.load_state_dict(state)
        return self._plain.eval()

    def record(self) -> dict:
        import modelopt

        return {"share": self.share, "start_step": self.start_step, "steps": self.steps,
                "recalibrations": len(self.calibrations) - 1, "calibrated_at": self.calibrations,
                "frozen_share": FROZEN_SHARE, "calibration_batches": CALIBRATION_BATCHES,
                "fp8_layers": len(self.layers), "bf16_layers": self.kept_bf16,
                "format": "E4M3 per-tensor weights and inputs, amax by max",
                "validation": "bf16 graph; best state chosen among validations in the phase",
                "modelopt": modelopt.__version__}


def fp8_phase(share: float) -> NoFP8Phase:
    """The phase ``fit`` calls: ``FP8Phase`` for a share above 0, else one that does nothing."""
    return FP8Phase(share) if share > 0 else NoFP8Phase()


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)

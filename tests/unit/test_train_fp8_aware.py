"""FP8-aware training (``train --fp8-aware``, ``model/train/fp8_phase.py``): the last share of
the steps trains with ModelOpt FP8 fake quantization on every GEMM but the output heads, amax
recalibrated and then frozen; the folder it writes holds a plain model."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

from helpers import write_sequences
from onerec_trt.data import load_dataset
from onerec_trt.errors import UserError
from onerec_trt.model.checkpoint import load_model, save_model
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.tokenizer import TokenizerConfig
from onerec_trt.model.train.config import TrainConfig
from onerec_trt.model.train.fp8_phase import FP8Phase, fp8_phase, output_heads
from onerec_trt.model.train.onerec import train


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.heads = nn.ModuleList([nn.Linear(8, 3)])

    def forward(self, x):
        return self.heads[0](torch.relu(self.body(x)))


def _quantizers_on(model: nn.Module) -> dict[str, bool]:
    return {name: mod.is_enabled for name, mod in model.named_modules()
            if name.endswith(("input_quantizer", "weight_quantizer"))}


def test_the_phase_starts_at_its_share_recalibrates_then_freezes():
    torch.manual_seed(0)
    model = _Toy()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(16, 4)

    def loss(scale):
        return model(x * scale).pow(2).mean()

    phase = FP8Phase(0.5)
    may_stop = []
    for step in range(1, 41):
        opt.zero_grad()
        loss(1.0 + step / 10).backward()  # inputs grow: amax must follow them
        opt.step()
        phase.after_step(model, loss, 1.0 + step / 10, step, end_step=40)
        may_stop.append(phase.may_stop())
    # early stopping may end the run only once amax is frozen (the last 25% of the phase)
    assert may_stop.index(True) == 34 and all(may_stop[34:])
    assert phase.start_step == 20 and phase.steps == 20
    # the first calibration at the start, more while the weights move, none in the last 25%
    assert phase.calibrations[0] == 20 and len(phase.calibrations) == 4
    assert max(phase.calibrations) < 35
    assert _quantizers_on(model) == {"body.input_quantizer": True,
                                     "body.weight_quantizer": True,
                                     "heads.0.input_quantizer": False,
                                     "heads.0.weight_quantizer": False}
    # amax follows the last calibration's batches (inputs scaled by up to 1 + 34/10)
    assert float(model.body.input_quantizer.amax) > float(x.abs().max()) * 3
    with phase.reference(model):
        assert not any(_quantizers_on(model).values())
    assert _quantizers_on(model)["body.input_quantizer"]
    plain = phase.finish(model)
    assert type(plain.body) is nn.Linear
    assert set(plain.state_dict()) == {"body.weight", "body.bias", "heads.0.weight",
                                       "heads.0.bias"}
    assert torch.equal(plain.body.weight, model.body.weight)


def test_off_the_phase_does_nothing():
    model = _Toy()
    phase = fp8_phase(0.0)
    phase.after_step(model, None, None, 10, 10)
    assert phase.finish(model) is model and phase.record() is None
    assert output_heads(model) == ["heads.0"]


def test_fp8_aware_training_writes_a_plain_model_and_records_the_phase(tmp_path):
    data = load_dataset("sequences", write_sequences(tmp_path / "seq.txt"))
    cfg = TrainConfig(epochs=4, batch_size=8, eval_users=20, eval_beam=10, warmup_steps=5,
                      patience=0, fp8_aware=0.5)
    bundle = train(data, ModelConfig.from_preset("tiny"),
                   TokenizerConfig(codebook_size=4, embedding_dim=8), cfg, progress=False)
    record = bundle.training["fp8_aware"]
    total = bundle.training["epochs"][-1]["steps"]
    assert record["share"] == 0.5 and record["start_step"] == total // 2
    assert record["steps"] == total - total // 2 and record["recalibrations"] >= 1
    assert record["bf16_layers"] == ["heads.0", "heads.1", "heads.2"]
    assert record["fp8_layers"] > 0 and record["modelopt"]
    # the best state comes from the phase: earlier validations are marked and passed over
    phases = [e["fp8_phase"] for e in bundle.training["epochs"]]
    assert phases[0] is False and phases[-1] is True
    assert bundle.training["best_epoch"]["fp8_phase"] is True

    save_model(tmp_path / "model", bundle)
    with safe_open(str(tmp_path / "model" / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "quantizer" in k]
    loaded = load_model(tmp_path / "model")
    assert all(type(m) is nn.Linear for m in loaded.model.modules() if isinstance(m, nn.Linear))
    saved = json.loads((tmp_path / "model" / "training.json").read_text())
    assert saved["fp8_aware"]["steps"] == record["steps"]
    history = torch.from_numpy(np.array([[0] * 5 + [1, 2, 3]]))
    with torch.no_grad():
        assert torch.equal(loaded.model.context.states(history),
                           bundle.model.context.states(history))


def test_fp8_aware_share_is_checked():
    with pytest.raises(UserError, match="--fp8-aware"):
        TrainConfig(fp8_aware=1.5).check_fp8_aware()


def test_cli_takes_the_share_for_both_archs(tmp_path):
    from onerec_trt.cli import get_parser
    from onerec_trt.commands.train import _lm_options

    parse = get_parser().parse_args
    base = ["train", "--dataset", "ml-1m", "--out", str(tmp_path / "m")]
    assert parse(base + ["--fp8-aware"]).fp8_aware == 0.25
    assert parse(base + ["--fp8-aware", "0.4"]).fp8_aware == 0.4
    assert not hasattr(parse(base), "fp8_aware")  # the TrainConfig default: off
    assert _lm_options(parse(base + ["--arch", "qwen3", "--fp8-aware"])).train.fp8_aware == 0.25


def test_cli_refuses_a_share_above_one(tmp_path, cli):
    data = write_sequences(tmp_path / "seq.txt")
    proc = cli("train", "--dataset", "sequences", "--data", data, "--preset", "tiny", "--out",
               tmp_path / "m", "--fp8-aware", "2")
    assert proc.returncode == 2 and "--fp8-aware takes a share" in proc.stderr

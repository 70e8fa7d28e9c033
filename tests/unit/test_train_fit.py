"""The one training loop (``model/train/fit.py``): both ``--arch`` trainers go through ``fit``,
a spent budget ends both after one step with the same warning, and early stopping follows the
smoothed validation curve (``SmoothedStopping``) and keeps the best state."""

import time

import pytest
import torch

from helpers import write_sequences
from onerec_trt.data import load_dataset
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.tokenizer import TokenizerConfig
from onerec_trt.model.train import fit as fit_module
from onerec_trt.model.train import onerec, qwen3
from onerec_trt.model.train.config import DataOptions, TrainConfig
from onerec_trt.model.train.fit import Trainee, fit
from onerec_trt.model.train.stage import TrainOptions

SPENT = {"max_minutes": 1e-6, "eval_users": 10, "eval_beam": 10}  # spent by the tokenizer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_dataset("sequences", write_sequences(tmp_path_factory.mktemp("fit") / "s.txt"))


@pytest.fixture
def fits(monkeypatch):
    """The real ``fit``, recording each call's model type (the native trainer imports it at
    load time, the Qwen3 trainer when it trains)."""
    calls = []

    def recording(trainee, *args, **kwargs):
        calls.append(type(trainee.model).__name__)
        return fit(trainee, *args, **kwargs)

    monkeypatch.setattr(onerec, "fit", recording)
    monkeypatch.setattr(fit_module, "fit", recording)
    return calls


def _native(data):
    cfg = TrainConfig(epochs=2, batch_size=1, **SPENT)
    return onerec.train(data, ModelConfig.from_preset("tiny"),
                        TokenizerConfig(codebook_size=4, embedding_dim=8), cfg,
                        progress=False).training


def _qwen3(data):
    opts = qwen3.LMOptions(dataset="sequences", out="unused", codebook=8, progress=False,
                           train=TrainConfig(epochs=2, batch_size=1, **SPENT),
                           model=qwen3.LMConfig(hidden=16, layers=1, heads=2, max_history=8))
    return qwen3.fit_lm(data, opts).record


def test_both_trainers_go_through_fit_and_a_spent_budget_stops_both(data, fits, caplog):
    records = []
    for train in (_native, _qwen3):
        caplog.clear()
        caplog.set_level("INFO", logger="onerec_trt")
        records.append(train(data))
        lines = caplog.messages
        record = records[-1]
        assert [e["steps"] for e in record["epochs"]] == [1]  # ended within the first epoch
        assert "expect a model near popularity" in record["budget_warning"]
        assert any(line == "warning: " + record["budget_warning"] for line in lines)
    assert fits == ["OneRecModel", "Qwen3ForCausalLM"]
    native, lm = (r["epochs"][0] for r in records)
    assert native.keys() == lm.keys()  # the same validation record


def _curve_trainee(scores: list[float], seen: list[float]) -> Trainee:
    """A one-weight model whose validation scores follow ``scores``; ``seen`` gets its weight
    at each validation."""
    model = torch.nn.Linear(1, 1, bias=False)
    x = torch.ones(1, 1)

    def validate() -> dict:
        seen.append(float(model.weight.detach()))
        return {"recall@10": scores[len(seen) - 1], "ndcg@10": 0.0}

    return Trainee(model, torch.optim.AdamW(model.parameters(), lr=0.1), 1, lambda: [x],
                   lambda batch: ((model(batch) - 5.0) ** 2).mean(), validate)


@pytest.mark.parametrize("patience, validations", [(2, 8), (0, 10)])
def test_early_stopping_follows_the_smoothed_curve_and_keeps_the_best(patience, validations):
    """Means of the last 3 scores: .1 .15 .2 .3 .4 .43 .4 .3: two worse means after epoch 6
    stop the run at epoch 8 (past half the schedule); the weights are epoch 5's (best score)."""
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    seen: list[float] = []
    trainee = _curve_trainee(scores, seen)
    cfg = TrainConfig(epochs=10, lr=0.1, warmup_steps=1, patience=patience, max_minutes=60)
    result = fit(trainee, cfg, t0=time.time(), progress=False)
    assert len(result.epochs) == validations and result.best_epoch["epoch"] == 5
    assert float(trainee.model.weight.detach()) == seen[4] and not trainee.model.training


def test_both_options_read_the_same_data_options():
    shared = {"dataset", "data", "columns", "min_user", "min_item", "kcore"}
    for options in (TrainOptions, qwen3.LMOptions):
        assert issubclass(options, DataOptions)
        assert shared <= set(options.__dataclass_fields__)
    assert TrainOptions(dataset="x", out="m").filters() == qwen3.LMOptions(
        dataset="x", out="m").filters() == {"min_user": 3, "min_item": 1, "kcore": 0}

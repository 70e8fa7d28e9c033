"""The wall-time budget of ``train`` (issue 30 item 6): the warm-up shrinks with the steps the
budget holds, the budget is checked within an epoch, and a budget too short says so."""

from helpers import write_sequences
from onerec_trt.data import load_dataset
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.tokenizer import TokenizerConfig
from onerec_trt.model.train.onerec import train
from onerec_trt.model.train.schedule import WARMUP_SHARE, BudgetedCosine
from onerec_trt.model.train.stage import TrainConfig, TrainOptions


def test_warmup_never_above_its_share_of_the_budgeted_steps():
    """A 60 s budget at 0.3 s a step holds 200 of the 2,000 planned steps: warm-up 10, not
    100 (before: 100 warm-up steps of a 20-step cosine never passed 6% of the peak)."""
    schedule = BudgetedCosine(peak_lr=1.0, warmup_steps=100, total_steps=2000,
                              budget_seconds=60)
    assert schedule.warmup == 100  # the plan holds: the given warm-up
    schedule.fit_budget(10, 3.0)
    assert schedule.total_steps == 200
    assert schedule.warmup <= WARMUP_SHARE * schedule.total_steps
    assert schedule.lr(schedule.warmup) > 0.9  # the peak is reached


def test_warmup_of_the_plan_is_kept_when_the_budget_holds_it():
    schedule = BudgetedCosine(peak_lr=1.0, warmup_steps=100, total_steps=2000,
                              budget_seconds=1e6)
    schedule.fit_budget(10, 3.0)
    assert (schedule.total_steps, schedule.warmup) == (2000, 100)


def _train_spent(path):
    """One epoch of single-window steps on a budget already spent by the tokenizer."""
    data = load_dataset("sequences", path)
    cfg = TrainConfig(epochs=1, max_minutes=1e-6, batch_size=1, eval_users=10, eval_beam=10)
    return train(data, ModelConfig.from_preset("tiny"),
                 TokenizerConfig(codebook_size=4, embedding_dim=8), cfg, progress=False)


def test_a_spent_budget_ends_training_within_the_epoch_and_warns(tmp_path, caplog):
    """Before: the budget was checked at epoch ends only, so a large epoch ran past it (a
    1-minute budget took 1.6 min); now the first step past it ends the run, and the run says
    the budget is too short, at the start and in training.json."""
    caplog.set_level("INFO", logger="onerec_trt")
    bundle = _train_spent(write_sequences(tmp_path / "seq.txt"))
    lines = caplog.messages
    assert bundle.training["epochs"][-1]["steps"] == 1
    warning = bundle.training["budget_warning"]
    assert "expect a model near popularity; give --max-minutes" in warning
    assert any(line.startswith("warning: ") and warning in line for line in lines)


def test_train_defaults_to_one_thread():
    """All cores of a busy 2-core machine made 10 steps a minute, 1 thread 355."""
    assert TrainOptions(dataset="sequences", out="m").threads == 1


def test_the_short_budget_warning_is_withdrawn_when_the_machine_speeds_up(caplog):
    """Judged a tenth into the budget, the pace may be a busy moment's: when the budget later
    holds enough steps, the run says so and training.json keeps no warning."""
    import time

    from onerec_trt.model.train.fit import BudgetFit

    caplog.set_level("INFO", logger="onerec_trt")
    schedule = BudgetedCosine(peak_lr=1.0, warmup_steps=100, total_steps=5000,
                              budget_seconds=100)
    budget = BudgetFit(schedule, 100 / 60, time.time() - 20)
    budget.fit(100)  # 0.2 s a step: 500 steps
    assert "expect a model near popularity" in budget.warning
    budget.t_train = time.time() - 30
    budget.fit(1100)  # 0.01 s a step now: the plan again
    assert budget.warning is None and "no longer applies" in caplog.messages[-1]


def test_a_short_qad_budget_names_qad_not_max_minutes():
    """QAD runs the same loop: its short-budget warning names --qad and what it means there."""
    import time

    from onerec_trt.model.train.fit import BudgetFit

    schedule = BudgetedCosine(peak_lr=1.0, warmup_steps=20, total_steps=5000,
                              budget_seconds=100)
    budget = BudgetFit(schedule, 100 / 60, time.time() - 20, "--qad")
    budget.fit(100)
    assert "give --qad" in budget.warning and "--max-minutes" not in budget.warning
    assert "popularity" not in budget.warning

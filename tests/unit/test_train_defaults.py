"""Training options chosen from the data, the budgeted cosine and the smoothed stopping rule."""

import json
import math

import numpy as np
import pytest

from helpers import write_sequences
from onerec_trt.cli import main
from onerec_trt.data import LeaveOneOut, load_dataset
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.tokenizer import TokenizerConfig
from onerec_trt.model.train import defaults
from onerec_trt.model.train.onerec import train
from onerec_trt.model.train.schedule import BudgetedCosine, SmoothedStopping
from onerec_trt.model.train.stage import TrainConfig, TrainOptions, train_stage


def _profile(**kw) -> defaults.DataProfile:
    base = {"users": 6040, "items": 3706, "interactions": 1_000_209, "p95_length": 556,
            "rare_target_share": 0.01}
    return defaults.DataProfile(**{**base, **kw})


def _by_name(choices) -> dict:
    return {c.name: c for c in choices}


def test_dense_long_sequences_get_the_shipped_models_options():
    chosen = _by_name(defaults.choose(_profile(), lambda history: 250, {}))
    assert chosen["max_history"].value == 200 and chosen["codebook"].value == 256
    assert chosen["prefix_inputs"].value is False and chosen["distill"].value == 0.0
    assert chosen["epochs"].value == 30 and chosen["warmup_steps"].value == 200
    assert chosen["eval_every"].value == 1
    assert not any(c.given for c in chosen.values())


def test_sparse_short_sequences_get_the_beauty_options():
    chosen = _by_name(defaults.choose(_profile(p95_length=21, rare_target_share=0.38),
                                      lambda history: 700, {}))
    assert chosen["max_history"].value == 50 and chosen["codebook"].value == 256
    assert chosen["prefix_inputs"].value is True and chosen["distill"].value == 3.0
    assert "sparse: 38%" in chosen["distill"].reason


@pytest.mark.parametrize("items, codebook", [(3706, 256), (65_536, 256), (65_537, 512),
                                             (1_000_000, 1024), (20_000_000, 8192)])
def test_the_codebook_grows_with_the_catalogue(items, codebook):
    chosen = _by_name(defaults.choose(_profile(items=items), lambda h: 10, {}))
    assert chosen["codebook"].value == codebook
    assert chosen["codebook"].value ** 2 >= items


def test_a_small_data_set_trains_for_enough_steps_with_a_short_warm_up():
    """943 users: 35 steps an epoch; 30 epochs would be 1,050 steps, 200 of them warm-up."""
    chosen = _by_name(defaults.choose(_profile(users=943, p95_length=310), lambda h: 35, {}))
    epochs = chosen["epochs"].value
    assert epochs == math.ceil(defaults.MIN_STEPS / 35)
    assert chosen["warmup_steps"].value <= 0.05 * epochs * 35
    assert chosen["eval_every"].value == 2  # about 30 validations, not 58


def test_given_options_are_kept_and_marked():
    seen = []

    def steps(history):
        seen.append(history)
        return 10

    chosen = _by_name(defaults.choose(
        _profile(rare_target_share=0.5), steps,
        {"codebook": 64, "prefix_inputs": False, "max_history": 80, "epochs": 5}))
    assert (chosen["codebook"].value, chosen["codebook"].given) == (64, True)
    assert chosen["prefix_inputs"].value is False and chosen["prefix_inputs"].given
    assert chosen["distill"].value == 3.0 and not chosen["distill"].given  # still sparse
    assert chosen["epochs"].value == 5 and seen == [80]  # steps counted at the given history
    assert chosen["warmup_steps"].value == max(1, int(5 * 10 * 0.05))


def test_history_never_exceeds_the_presets():
    chosen = _by_name(defaults.choose(_profile(), lambda h: 10, {}, preset_history=20))
    assert chosen["max_history"].value == 20


def test_profile_counts_rare_validation_targets_in_the_training_part():
    # item 9 is every user's validation target and occurs nowhere else: 100% rare
    seqs = [np.array([1, 2, 3, 9, 4]) for _ in range(5)]
    profile = defaults.DataProfile.of(LeaveOneOut.from_sequences(seqs), 9)
    assert profile.rare_target_share == 1.0 and profile.sparse
    assert (profile.users, profile.interactions, profile.p95_length) == (5, 25, 5)
    dense = defaults.DataProfile.of(LeaveOneOut.from_sequences([np.array([1, 2, 3, 2, 4])] * 20),
                                    4)
    assert dense.rare_target_share == 0.0 and not dense.sparse


def test_describe_names_every_option_with_its_reason():
    text = defaults.describe(defaults.choose(_profile(), lambda h: 250, {"codebook": 128}))
    for name in defaults.CHOICES:
        assert name.replace("_", "-") in text
    assert "codebook       128   given" in text


def test_cosine_warms_up_then_ends_at_zero():
    s = BudgetedCosine(1e-3, warmup_steps=10, total_steps=100, budget_seconds=1e9)
    assert s.lr(0) == pytest.approx(1e-4) and s.lr(9) == pytest.approx(1e-3, rel=3e-2)
    assert s.lr(50) == pytest.approx(0.5e-3, rel=1e-6) and s.lr(100) == 0.0


def test_the_budget_moves_the_end_of_the_cosine_but_never_past_the_plan():
    s = BudgetedCosine(1e-3, 10, total_steps=1000, budget_seconds=100)
    assert not s.fit_budget(steps_done=100, seconds=10)  # 0.1 s a step holds 1,000 steps
    assert s.total_steps == 1000
    assert s.fit_budget(steps_done=200, seconds=30)  # 0.2 s a step now: 200 + 350
    assert s.total_steps == 550
    assert s.fit_budget(steps_done=300, seconds=35)  # 0.05 s a step: back to the plan
    assert s.total_steps == 1000 and s.planned == 1000
    assert s.fit_budget(steps_done=400, seconds=120) and s.total_steps == 400  # out of time
    assert s.finished(400) and s.progress(400) == 1.0


def test_smoothed_stopping_ignores_one_bad_validation_and_early_noise():
    rule = SmoothedStopping(patience=2)
    assert not rule.update(0.10, progress=0.1)
    assert not rule.update(0.05, progress=0.2)  # noise: smoothed 0.075, bad 1
    assert not rule.update(0.30, progress=0.3)  # smoothed 0.15: better
    assert not rule.update(0.01, progress=0.4)
    assert not rule.update(0.01, progress=0.45)  # patience spent, but before half the run
    assert rule.update(0.01, progress=0.6)
    assert not SmoothedStopping(patience=0).update(0.0, progress=1.0)


def test_a_short_budget_ends_the_cosine_instead_of_cutting_it(tmp_path, caplog):
    data = load_dataset("sequences", write_sequences(tmp_path / "seq.txt", users=200))
    cfg = TrainConfig(epochs=400, batch_size=8, eval_users=20, eval_beam=10, eval_every=400,
                      patience=0, warmup_steps=5, max_minutes=0.1)
    caplog.set_level("INFO", logger="onerec_trt")
    bundle = train(data, ModelConfig.from_preset("tiny"),
                   TokenizerConfig(codebook_size=4, embedding_dim=8), cfg, progress=False)
    logs = caplog.messages
    last = bundle.training["epochs"][-1]
    assert last["epoch"] < 400 and last["lr"] < 0.05 * cfg.lr  # the bottom of the cosine
    assert any("budget cannot hold" in line for line in logs)
    assert bundle.training["minutes"] < 1.0


def test_the_cli_chooses_what_the_user_leaves_out(tmp_path, capsys):
    data = write_sequences(tmp_path / "seq.txt", users=60)
    assert main(["train", "--dataset", "sequences", "--data", str(data), "--preset", "tiny",
                 "--out", str(tmp_path / "m"), "--codebook", "4", "--no-prefix-inputs",
                 "--batch-size", "8", "--eval-users", "20", "--max-minutes", "0.05",
                 "--threads", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "options (chosen from the data" in out and "codebook       4     given" in out
    training = json.loads((tmp_path / "m" / "training.json").read_text())
    chosen = {c["name"]: c for c in training["chosen_from_data"]}
    assert chosen["codebook"]["given"] and chosen["prefix_inputs"]["given"]
    assert not chosen["epochs"]["given"] and chosen["max_history"]["value"] == 20  # tiny's


def test_programmatic_training_chooses_nothing(tmp_path):
    data = write_sequences(tmp_path / "seq.txt", users=40)
    opts = TrainOptions(dataset="sequences", data=str(data), out=str(tmp_path / "m"),
                        preset="tiny", codebook=4, progress=False,
                        train=TrainConfig(epochs=1, max_steps=2, batch_size=8, eval_users=10,
                                          eval_beam=10))
    bundle = train_stage(opts)
    assert bundle.training["chosen_from_data"] == []
    assert bundle.training["train_config"]["epochs"] == 1


@pytest.mark.parametrize("flag, value", [("--eval-every", "0"), ("--warmup-steps", "0"),
                                         ("--epochs", "-1"), ("--distill", "-1")])
def test_bad_schedule_options_are_refused_before_anything_is_written(tmp_path, capsys, flag,
                                                                     value):
    from onerec_trt.cli import main

    data = write_sequences(tmp_path / "seq.txt", users=20)
    try:  # argparse refuses a bad value itself (SystemExit 2); train's checks return 2
        code = main(["train", "--dataset", "sequences", "--data", str(data), "--preset", "tiny",
                     "--out", str(tmp_path / "m"), flag, value])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and flag in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()

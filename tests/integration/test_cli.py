"""The CLI as a user runs it: real subprocesses, exit codes, one-line errors, files written."""

import json
import subprocess
import sys

import pytest

from helpers import write_sequences

CLI = [sys.executable, "-m", "onerec_trt.cli"]


def run(*args, check=True):
    proc = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    data = write_sequences(tmp / "seq.txt", users=80, max_step=1)
    out = tmp / "model"
    run("train", "--dataset", "sequences", "--data", data, "--preset", "tiny", "--out", out,
        "--epochs", "15", "--batch-size", "8", "--lr", "0.01", "--codebook", "4",
        "--eval-users", "30", "--threads", "1", "--quiet", "--prefix-inputs", "--distill", "0.5",
        "--d-model", "24")
    return out, data


def test_help_lists_the_stages():
    out = run("--help").stdout
    for stage in ("run", "train", "evaluate", "export", "verify", "triton"):
        assert f"  {stage} " in out
    assert "evaluate (eval)" in out  # the old name still works


def test_train_writes_a_complete_model_folder(tiny_model_dir):
    out, _ = tiny_model_dir
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "semantic_ids.safetensors",
            "items.json", "training.json", "manifest.json"} <= names
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "train" and "model.safetensors" in manifest["files"]
    config = json.loads((out / "config.json").read_text())
    assert (config["d_model"], config["ffn_hidden"]) == (24, 96)  # --d-model, hidden at 4x
    assert not any(p.name.endswith(".partial") for p in out.parent.iterdir())


def test_eval_on_a_sequence_file_with_baselines(tiny_model_dir, tmp_path):
    model, data = tiny_model_dir
    report_path = tmp_path / "eval.json"
    proc = run("eval", "--model", model, "--dataset", "sequences", "--data", data,
               "--beam", "10", "--baselines", "--json", report_path, "--quiet")
    report = json.loads(report_path.read_text())
    for key in ("recall@5", "recall@10", "ndcg@5", "ndcg@10", "users", "dataset", "split",
                "backend"):
        assert key in report
    assert report["users"] == 80 and report["split"] == "test"
    assert set(report["baselines"]) == {"popularity", "markov", "item_knn"}
    assert "markov" in proc.stdout and "recall@10" in proc.stdout
    # the walk (always one step on) is learnable: the model finds it, popularity cannot
    assert report["recall@10"] > 0.6 > report["baselines"]["popularity"]["recall@10"]


@pytest.mark.parametrize("args, message", [
    (["eval", "--model", "/nonexistent"], "model folder not found"),
    (["eval", "--model", "."], "is not a model folder"),
    (["train", "--dataset", "beauty", "--out", "x"], "needs a file"),
    (["train", "--dataset", "nope", "--out", "x"], "unknown dataset"),
    (["train", "--dataset", "sequences", "--data", "/nonexistent", "--out", "x"],
     "file not found"),
    (["train", "--dataset", "sequences", "--data", "/nonexistent", "--out", "x",
      "--distill", "-1"], "--distill must not be negative"),
])
def test_user_errors_are_one_line_with_exit_2(args, message):
    proc = run(*args, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_train_refuses_an_existing_output_folder(tiny_model_dir):
    model, data = tiny_model_dir
    proc = run("train", "--dataset", "sequences", "--data", data, "--preset", "tiny", "--out",
               model, check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr


# --- help texts (issue 30 item 6) --------------------------------------------------------------


def _stage_parsers():
    """Every stage's parser and every sub-command's (triton export/serve/check/load)."""
    import argparse

    from onerec_trt.cli import get_parser

    def subparsers(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                yield from {id(p): p for p in action.choices.values()}.values()

    for stage in subparsers(get_parser()):
        yield stage
        yield from subparsers(stage)


def test_every_option_has_help_that_says_its_default_once():
    """Before: '--threads ... (default: all) (default: None)', and train's --seed, evaluate's
    --split and analyze's --seed had no help at all."""
    import argparse
    import re

    problems = []
    for parser in _stage_parsers():
        formatter = parser.formatter_class(prog=parser.prog)
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            name = f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
            if not action.help:
                problems.append(f"{name}: no help")
                continue
            text = formatter._get_help_string(action) % {**vars(action), "prog": parser.prog}
            if len(re.findall(r"\(default[: ]", text)) > 1 or "(default: None)" in text:
                problems.append(f"{name}: {text}")
    assert not problems, "\n".join(problems)


def test_top_level_help_lists_each_stage_once():
    lines = run("--help").stdout.splitlines()
    assert sum(line.startswith("  train ") for line in lines) == 1
    assert sum("evaluate (eval)" in line for line in lines) == 1


def test_codebook_help_states_the_rule_the_code_uses():
    from onerec_trt.model.train.defaults import CODEBOOK

    out = run("train", "--help").stdout
    assert f"{CODEBOOK}, or for a catalogue over" in " ".join(out.split())
    assert "32 on sparse" not in " ".join(out.split())

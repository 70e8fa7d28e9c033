"""What the CLI must never do: delete its inputs, replace a file, start work it cannot write,
take 0 for a count, or leave half-written folders behind when it is stopped or killed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import write_sequences
from onerec_trt import cli
from onerec_trt.artifacts import staged_folder
from onerec_trt.errors import UserError

CLI = [sys.executable, "-m", "onerec_trt.cli"]
ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}


def _main(capsys, *args) -> tuple[int, str]:
    code = cli.main([str(a) for a in args])
    return code, capsys.readouterr().err


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """An untrained tiny model (a few seconds)."""
    out = tmp_path_factory.mktemp("safety") / "model"
    assert cli.main(["init", "--preset", "tiny", "--items", "50", "--codebook", "8",
                     "--levels", "2", "--histories", "8", "--out", str(out)]) == 0
    return out


@pytest.fixture
def inputs(tmp_path) -> Path:
    """A folder with a file of each kind a command reads (only the paths matter here)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("x.onnx", "h.npy", "calibration.json", "onnx/x.onnx", "fp8/x.onnx"):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(name)
    write_sequences(folder / "seq.txt", users=10, items=10)
    return folder


# every command that writes: (arguments, what the refusal says); IN: the inputs folder, UP:
# the folder holding it
REFUSED = {
    "export is its model": (["export", "--model", "IN", "--out", "IN", "--force"], "is an input"),
    "quantize inside --onnx": (["quantize", "--onnx", "IN", "--out", "IN/fp8", "--force"],
                               "lies inside an input"),
    "quantize is --calibration's folder": (["quantize", "--calibration", "IN/calibration.json",
                                            "--out", "IN", "--force"], "contains an input"),
    "plugins holds --onnx": (["plugins", "--onnx", "IN", "--out", "UP", "--force"],
                             "contains an input"),
    "build holds a graph": (["build", "--onnx", "IN/x.onnx", "--out", "IN", "--force"],
                            "contains an input"),
    "verify holds --reference": (["verify", "--reference", "IN/x.onnx", "--out", "IN",
                                  "--force"], "contains an input"),
    "bench is --engines": (["bench", "--engines", "IN", "--out", "IN", "--force"],
                           "is an input"),
    "analyze holds --calib-data": (["analyze", "--calib-data", "IN/h.npy", "--out", "IN",
                                    "--force"], "contains an input"),
    "train holds --data": (["train", "--dataset", "sequences", "--data", "IN/seq.txt", "--out",
                            "IN", "--force"], "contains an input"),
    "triton export is --onnx": (["triton", "export", "--onnx", "IN", "--out", "IN", "--force"],
                                "is an input"),
    "triton export is the fp8 folder beside --onnx": (
        ["triton", "export", "--onnx", "IN/onnx", "--out", "IN/fp8", "--force"], "is an input"),
    "run into the model": (["run", "--model", "IN", "--out", "IN"], "lies inside an input"),
    "eval --json over --data": (["eval", "--data", "IN/seq.txt", "--json", "IN/seq.txt"],
                                "would overwrite an input"),
}


def _expand(arg: str, inputs: Path) -> str:
    head, _, tail = arg.partition("/")
    base = {"IN": inputs, "UP": inputs.parent}.get(head)
    return arg if base is None else str(base / tail if tail else base)


@pytest.mark.parametrize("case", REFUSED)
def test_force_never_replaces_an_input(case, inputs, capsys):
    args, message = REFUSED[case]
    before, paths = _tree(inputs), sorted(inputs.rglob("*"))
    code, err = _main(capsys, *(_expand(arg, inputs) for arg in args))
    assert code == 2 and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert _tree(inputs) == before and sorted(inputs.rglob("*")) == paths  # nothing new


def test_export_force_onto_its_own_model_keeps_the_model(model, capsys):
    before = _tree(model)
    code, err = _main(capsys, "export", "--model", model, "--out", model, "--force")
    assert code == 2 and "is an input" in err
    assert _tree(model) == before


def test_force_never_replaces_a_file_with_a_folder(model, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    code, err = _main(capsys, "export", "--model", model, "--out", target, "--force")
    assert code == 2 and "is a file, not a folder" in err
    assert target.read_text() == "mine"
    with pytest.raises(UserError, match="is a file"):
        with staged_folder(target, force=True):
            pass
    assert target.read_text() == "mine"


def test_out_dot_is_one_line_not_a_traceback(model, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = _main(capsys, "export", "--model", model, "--out", ".", "--force")
    assert code == 2 and "is the current folder" in err
    code, err = _main(capsys, "export", "--model", model, "--out", ".")
    assert code == 2 and "already exists" in err


def test_an_unwritable_out_fails_before_training(tmp_path):
    data = write_sequences(tmp_path / "seq.txt", users=40, items=20)
    start = time.perf_counter()
    proc = subprocess.run([*CLI, "train", "--dataset", "sequences", "--data", str(data),
                           "--preset", "tiny", "--out", "/proc/onerec-nowhere/model",
                           "--quiet"], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 2 and "cannot write in /proc" in proc.stderr, proc.stderr
    assert proc.stdout == ""  # not even the dataset was read
    assert time.perf_counter() - start < 60


def test_an_out_under_a_file_is_refused(model, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code, err = _main(capsys, "export", "--model", model, "--out", tmp_path / "f" / "onnx")
    assert code == 2 and "is a file, not a folder" in err


def test_eval_json_naming_a_folder_is_one_line(tmp_path, capsys):
    code, err = _main(capsys, "eval", "--json", tmp_path)
    assert code == 2 and "is a folder" in err and "Traceback" not in err


def test_eval_json_may_not_overwrite_a_file_of_the_model(model, capsys):
    before = _tree(model)
    code, err = _main(capsys, "eval", "--model", model, "--json", model / "manifest.json")
    assert code == 2 and "would overwrite an input" in err
    assert _tree(model) == before


@pytest.mark.parametrize("args", [
    ["train", "--dataset", "sequences", "--out", "x", "--threads"],
    ["train", "--dataset", "sequences", "--out", "x", "--codebook"],
    ["train", "--dataset", "sequences", "--out", "x", "--levels"],
    ["train", "--dataset", "sequences", "--out", "x", "--max-history"],
    ["init", "--out", "x", "--codebook"],
    ["init", "--out", "x", "--levels"],
    ["analyze", "--threads"],
    ["bench", "--threads"],
])
@pytest.mark.parametrize("value", ["0", "-2"])
def test_counts_must_be_positive(args, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*args, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"must be a positive integer, got {int(value)}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("args", [
    ["verify", "--out", "x", "--users"],
    ["verify", "--out", "x", "--batch"],
    ["run", "--out", "x", "--verify-users"],
])
def test_verify_counts_must_be_positive(args, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        cli.main([*args, "0"])  # verify --batch 0 used to run at one user a call
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "must be a positive integer, got 0" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("command", ["init", "train", "evaluate", "analyze", "quantize",
                                     "verify", "bench"])
def test_seeds_must_not_be_negative(command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # numpy's ValueError traceback before
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--seed", "-1"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "argument --seed: must be an integer >= 0, got -1" in err
    assert "Traceback" not in err and not list(tmp_path.iterdir())


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_leftovers_of_dead_runs_are_removed_and_live_ones_kept(tmp_path):
    dead, live = _dead_pid(), os.getpid()
    names = {"dead": f".out.{dead}.abc123.partial", "old": f".out.{dead}.old",
             "live": f".out.{live}.xyz_9.partial", "other": f".out.2.{dead}.q.partial",
             "unrelated": f".outer.{dead}.abc.partial"}
    for name in names.values():
        (tmp_path / name).mkdir()
    with staged_folder(tmp_path / "out") as tmp:
        assert tmp.name.startswith(f".out.{live}.") and tmp.name.endswith(".partial")
        (tmp / "a.txt").write_text("a")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"out", names["live"], names["other"], names["unrelated"]}


def test_an_interrupted_staged_folder_leaves_nothing(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with staged_folder(tmp_path / "out", force=True) as tmp:
            (tmp / "new.txt").write_text("new")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (tmp_path / "out" / "keep.txt").read_text() == "old"


def _start_until_staged(args: list[str], folder: Path, out: str) -> subprocess.Popen:
    """Start the CLI and return once its staged folder for ``out`` exists."""
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    deadline = time.monotonic() + 120
    while not list(folder.glob(f".{out}.*.partial")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no staged folder appeared: {proc.communicate()}")
        time.sleep(0.01)
    return proc


def test_sigterm_stops_a_stage_like_ctrl_c(model, tmp_path):
    proc = _start_until_staged(["export", "--model", str(model), "--out",
                                str(tmp_path / "e")], tmp_path, "e")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # neither the output nor its staged folder


def test_a_killed_plugins_run_leaves_nothing_that_a_rerun_trips_on(model, tmp_path, capsys):
    assert cli.main(["export", "--model", str(model), "--out", str(tmp_path / "e")]) == 0
    args = ["plugins", "--onnx", str(tmp_path / "e"), "--out", str(tmp_path / "p")]
    proc = _start_until_staged(args, tmp_path, "p")
    proc.kill()
    proc.wait(timeout=60)
    assert not (tmp_path / "p").exists()  # never half-written: only the staged folder
    assert list(tmp_path.glob(".p.*.partial"))
    assert cli.main(args) == 0
    assert (tmp_path / "p" / "plugins.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e", "p"]  # the leftover is gone


def test_run_rewrites_its_own_folder_but_not_a_model_in_a_stage_folder(model, tmp_path):
    from onerec_trt.commands import run as run_command

    def check(out: Path, model: Path) -> None:
        run_command.check_outputs(cli.get_parser().parse_args(
            ["run", "--model", str(model), "--out", str(out)]))

    (tmp_path / "onnx").mkdir()  # an earlier run's folders are replaced: no error
    check(tmp_path, model)
    (tmp_path / "r" / "onnx").mkdir(parents=True)  # a model where run writes its graphs
    with pytest.raises(UserError, match="is an input"):
        check(tmp_path / "r", tmp_path / "r" / "onnx")
    with pytest.raises(UserError, match="lies inside an input"):
        check(model, model)


def test_the_sigterm_handler_is_the_callers_again_after_main(capsys):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit):
        cli.main(["bench", "--threads", "0"])
    assert cli.main(["eval", "--json", "/"]) == 2
    assert signal.getsignal(signal.SIGTERM) is before

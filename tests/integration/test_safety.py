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
    "quantize holds --policy": (["quantize", "--policy", "IN/calibration.json", "--out", "IN",
                                 "--force"], "contains an input"),  # issue 28 item 11
    "quantize holds --exclusions": (["quantize", "--exclusions", "IN/calibration.json",
                                     "--out", "IN", "--force"], "contains an input"),
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
    from onerec_trt.run import RunOptions, check_run_folder

    def check(out: Path, model: Path) -> None:  # what 'onerec-trt run' checks before any work
        check_run_folder(RunOptions(model=str(model), out=str(out)))

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


# ---- issue 28 item 11: the data a model folder recorded at training is an input too ---------

@pytest.fixture
def trained(tiny_pipeline, tmp_path) -> tuple[Path, Path]:
    """A copy of the tiny pipeline's trained model whose training.json names a copy of its
    data file, in a folder of its own: (model folder, data file)."""
    import json
    import shutil

    model, data = tmp_path / "model", tmp_path / "data" / "seq.txt"
    shutil.copytree(tiny_pipeline / "model", model)
    data.parent.mkdir()
    shutil.copy(tiny_pipeline / "seq.txt", data)
    training = json.loads((model / "training.json").read_text())
    (model / "training.json").write_text(json.dumps({**training, "data": str(data)}))
    return model, data


def test_eval_json_never_overwrites_the_models_training_data(trained, capsys):
    model, data = trained
    before = data.read_bytes()
    code, err = _main(capsys, "eval", "--model", model, "--json", data, "--users", 5)
    assert code == 2 and f"would overwrite an input of this command: {data}" in err, err
    assert data.read_bytes() == before


def test_verify_force_never_deletes_the_models_training_data(trained, capsys):
    model, data = trained
    before = _tree(data.parent)
    code, err = _main(capsys, "verify", "--model", model, "--out", data.parent, "--force")
    assert code == 2 and "contains an input of this command" in err, err
    assert _tree(data.parent) == before


def test_inputs_of_reads_the_declared_fields_the_model_and_its_data(trained):
    from dataclasses import dataclass, field

    from onerec_trt.artifacts import inputs_of
    from onerec_trt.evaluate import EvalOptions
    from onerec_trt.model.checkpoint import SHIPPED
    from onerec_trt.quantize import QuantizeOptions

    model, data = trained
    assert inputs_of(EvalOptions(model=str(model))) == [str(model), str(data)]
    assert str(SHIPPED) in inputs_of(EvalOptions())  # --model default: the shipped folder
    got = inputs_of(QuantizeOptions(model=str(model), onnx="o", policy="p.json",
                                    calibration="c.json", exclusions="e.json"))
    assert {"o", "p.json", "c.json", "e.json", str(data)} <= set(got)

    @dataclass
    class Options:  # a stage's own input option, declared on its field
        out: str = "out"
        table: str = field(default="t.csv", metadata={"input": True})
        engines: list[str] = field(default_factory=lambda: ["a.plan", "b.plan"])

    assert inputs_of(Options()) == ["a.plan", "b.plan", "t.csv"]


# ---- issue 28 item 12: the Python API refuses what the CLI refuses --------------------------

def test_quantize_api_refuses_its_own_onnx_folder_as_out(tiny_pipeline, tmp_path):
    import shutil

    from onerec_trt.quantize import QuantizeOptions, quantize

    onnx = tmp_path / "onnx"
    shutil.copytree(tiny_pipeline / "onnx", onnx)
    before = _tree(onnx)
    opts = QuantizeOptions(model=str(tiny_pipeline / "model"), onnx=str(onnx), out=str(onnx),
                           calib_users=16, calib_batch=16, force=True)
    with pytest.raises(UserError, match="is an input of this command"):
        quantize(opts)
    assert _tree(onnx) == before


def test_export_api_refuses_a_folder_holding_the_models_training_data(trained):
    from onerec_trt.export import ExportOptions, export

    model, data = trained
    before = _tree(data.parent)
    with pytest.raises(UserError, match="contains an input of this command"):
        export(ExportOptions(model=str(model), out=str(data.parent), force=True))
    assert _tree(data.parent) == before


def test_staged_folder_refuses_an_input_of_the_options_it_is_given(tmp_path):
    from onerec_trt.quantize import QuantizeOptions

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "policy.json").write_text("{}")
    opts = QuantizeOptions(policy=str(tmp_path / "in" / "policy.json"), out=str(tmp_path / "in"))
    with pytest.raises(UserError, match="contains an input"):
        with staged_folder(opts.out, force=True, inputs=opts):
            pass
    assert (tmp_path / "in" / "policy.json").read_text() == "{}"
    with staged_folder(tmp_path / "elsewhere", force=True, inputs=opts) as tmp:
        (tmp / "a").write_text("a")
    assert (tmp_path / "elsewhere" / "a").is_file()


# ---- issue 28 item 13: --force onto a symbolic link leaves no .NAME.PID.old ------------------

@pytest.mark.parametrize("dangling", [False, True])
def test_force_onto_a_symlink_leaves_no_old_link(tmp_path, dangling):
    target = tmp_path / "target"
    if not dangling:
        target.mkdir()
        (target / "keep.txt").write_text("kept")
    (tmp_path / "out").symlink_to(target)
    with staged_folder(tmp_path / "out", force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    out = tmp_path / "out"
    assert not out.is_symlink() and (out / "new.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out"] if dangling
                                                          else ["out", "target"])
    if not dangling:
        assert (target / "keep.txt").read_text() == "kept"  # the link went, not its target


def test_old_links_of_dead_runs_are_removed_but_not_their_targets(tmp_path):
    dead = _dead_pid()
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "keep.txt").write_text("kept")
    (tmp_path / f".out.{dead}.old").symlink_to(tmp_path / "target")
    (tmp_path / f".out2.{dead}.old").symlink_to(tmp_path / "nowhere")
    with staged_folder(tmp_path / "out"):
        pass
    with staged_folder(tmp_path / "out2"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out2", "target"]
    assert (tmp_path / "target" / "keep.txt").read_text() == "kept"


# ---- issue 28 item 20: a full disk is one line, exit 2, nothing left behind -----------------

@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs (needs root, or CAP_SYS_ADMIN): a real ENOSPC, the machine's disk
    untouched."""
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (not root?): {proc.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_in_a_staged_folder_is_a_user_error(full_disk):
    with pytest.raises(UserError, match=f"could not write {full_disk / 'out'}: No space left"):
        with staged_folder(full_disk / "out") as tmp:
            (tmp / "big.bin").write_bytes(bytes(200_000))
    assert list(full_disk.iterdir()) == []


def test_a_full_disk_during_a_stage_is_one_line_and_leaves_nothing(model, full_disk, capsys):
    code, err = _main(capsys, "export", "--model", model, "--out", full_disk / "onnx")
    assert code == 2, err
    assert err.startswith(f"onerec-trt export: error: could not write {full_disk / 'onnx'}")
    assert "No space left on device" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 2  # the error and its note
    assert list(full_disk.iterdir()) == []  # the staged folder removed


def test_a_file_size_limit_is_one_line_and_leaves_nothing(tmp_path):
    """RLIMIT_FSIZE (SIGXFSZ ignored: EFBIG) stands in for a full disk where no tmpfs can be
    mounted; the same path through the code."""
    import resource

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_384, 16_384))

    # no .pyc (Python would rename a truncated one into place) and no cache outside tmp_path
    env = {**ENV, "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(tmp_path / "home")}
    out = tmp_path / "out" / "m"
    proc = subprocess.run([*CLI, "init", "--preset", "tiny", "--items", "50", "--codebook", "8",
                           "--levels", "2", "--out", str(out)], capture_output=True,
                          text=True, env=env, timeout=120, preexec_fn=limit)
    assert proc.returncode == 2, proc.stderr
    assert f"could not write {out}" in proc.stderr and "File too large" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(out.parent.iterdir()) == []

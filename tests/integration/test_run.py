"""``onerec-trt run``: every stage chained on the tiny preset's model, into one run folder."""

import json

from onerec_trt.cli import main as cli_main
from onerec_trt.layout import PLUGIN_GRAPHS, RunLayout
from onerec_trt.verify import VerifyReport


def test_run_chains_every_stage_on_a_tiny_model(tiny_pipeline, tmp_path, capsys):
    run = RunLayout(tmp_path / "run")
    code = cli_main(["run", "--model", str(tiny_pipeline / "model"), "--out", str(run.root),
                     "--users", "30", "--verify-users", "40", "--no-analyze"])
    verify = VerifyReport.load(run.verify / "verify.json")
    assert code == (0 if verify.passed else 1)
    assert verify.users == 40
    summary = run.summary.read_text()
    rows = [line.split("|")[1].strip() for line in summary.splitlines()[4:]]
    assert rows == ["evaluate", "export", "quantize", "plugins", "lint", "build", "verify",
                    "triton", "bench"]
    assert "skipped: TensorRT is not installed" in summary
    assert json.loads(run.eval_json.read_text())["users"] == 30
    for folder in (run.onnx, run.fp8, run.plugins, run.verify, run.triton, run.bench):
        assert json.loads((folder / "manifest.json").read_text())["files"], folder
    assert all((run.plugins / name).is_file() for name in PLUGIN_GRAPHS.values())
    assert json.loads((run.root / "manifest.json").read_text())["stage"] == "run"
    assert "run folder:" in capsys.readouterr().out


def test_run_shows_the_progress_of_its_long_stages(tiny_pipeline, tmp_path, capsys):
    """Before: evaluate and analyze ran inside 'run' with progress off (150-330 s of silence on
    the shipped model); now they show it: a line per 10% when stderr is not a terminal."""
    from onerec_trt.run import RunOptions, _evaluate

    layout = RunLayout(tmp_path / "run")
    layout.root.mkdir(parents=True)
    _evaluate(layout, RunOptions(model=str(tiny_pipeline / "model"), out=str(layout.root),
                                 users=30), {})
    err = capsys.readouterr().err
    assert "generate" in err and "\r" not in err
    _evaluate(layout, RunOptions(model=str(tiny_pipeline / "model"), out=str(layout.root),
                                 users=30, progress=False), {})
    assert "generate" not in capsys.readouterr().err

"""The stage runner: every stage's --out checks, staging, report + manifest, cleanup, logging."""

import json
import logging
import os
from dataclasses import dataclass, field

import pytest

from onerec_trt.artifacts import sha256_file
from onerec_trt.errors import UserError
from onerec_trt.reports import Report
from onerec_trt.stage_runner import StdoutHandler, log_to_stdout, run_stage


@dataclass
class ToyOptions:
    out: str
    graph: str = field(default="", metadata={"input": True})
    force: bool = False


@dataclass
class ToyReport(Report):
    rows: int
    seconds: float = 0.0


def _body(run):
    (run.folder / "data.txt").write_text("hello\n")
    run.inputs["graph"] = "abc"
    run.extra["untrained"] = True
    return ToyReport(rows=1, seconds=run.seconds())


def test_the_report_and_the_manifest_land_in_out_with_the_files(tmp_path):
    opts = ToyOptions(out=str(tmp_path / "out"))
    report = run_stage("toy", opts, _body, report="toy.json")
    out = tmp_path / "out"
    assert report.rows == 1 and ToyReport.load(out / "toy.json").rows == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "toy" and manifest["options"]["out"] == opts.out
    assert manifest["inputs"] == {"graph": "abc"} and manifest["untrained"] is True
    assert manifest["files"]["toy.json"] == sha256_file(out / "toy.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing staged is left


def test_a_declared_input_as_out_is_refused_from_python_before_any_work(tmp_path):
    graph = tmp_path / "graphs"
    graph.mkdir()
    (graph / "g.onnx").write_text("keep me")
    called = []
    for out in (graph, tmp_path):  # the input itself, and a folder holding it
        opts = ToyOptions(out=str(out), graph=str(graph / "g.onnx"), force=True)
        with pytest.raises(UserError, match="an input of this command"):
            run_stage("toy", opts, called.append)
    assert not called and (graph / "g.onnx").read_text() == "keep me"


def test_an_existing_out_needs_force(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(UserError, match="already exists"):
        run_stage("toy", ToyOptions(out=str(tmp_path / "out")), _body)
    run_stage("toy", ToyOptions(out=str(tmp_path / "out"), force=True), _body, report="r.json")
    assert (tmp_path / "out" / "r.json").is_file()


def test_a_failing_body_leaves_nothing_and_keeps_the_old_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")

    def fails(run):
        (run.folder / "half.txt").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_stage("toy", ToyOptions(out=str(out), force=True), fails)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]


def test_leftovers_of_a_killed_run_are_removed(tmp_path):
    dead = 2**22 + 12345  # above the usual pid_max: no such process
    leftover = tmp_path / f".out.{dead}.abcd.partial"
    leftover.mkdir()
    assert not _alive(dead)
    run_stage("toy", ToyOptions(out=str(tmp_path / "out")), _body)
    assert not leftover.exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stages_log_through_logging_and_the_cli_handler_prints_plain_lines(capsys):
    logger = logging.getLogger("onerec_trt.toy")
    root = logging.getLogger("onerec_trt")
    saved = root.level, list(root.handlers)
    try:
        root.setLevel(logging.NOTSET)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        logger.info("quiet for a library user")  # Python's default: INFO goes nowhere
        assert capsys.readouterr().out == ""
        log_to_stdout()
        log_to_stdout()  # once is enough: no second handler, no doubled lines
        logger.info("exported %s", "out")
        assert capsys.readouterr().out == "exported out\n"
        assert sum(isinstance(h, StdoutHandler) for h in root.handlers) == 1
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]


def test_a_failed_last_check_keeps_the_old_out(tmp_path):
    """``check`` sees the finished folder, manifest included, before it replaces ``out``."""
    out = tmp_path / "out"
    out.mkdir()
    seen = []

    def refuse(folder):
        seen.append(sorted(p.name for p in folder.iterdir()))
        raise RuntimeError("the folder failed its own check")

    with pytest.raises(RuntimeError, match="its own check"):
        run_stage("toy", ToyOptions(out=str(out), force=True), _body, report="toy.json",
                  check=refuse)
    assert seen == [["data.txt", "manifest.json", "toy.json"]]
    assert list(out.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_quiet_silences_a_stage_run_inside_another(caplog):
    from onerec_trt.stage_runner import quiet

    caplog.set_level(logging.INFO, logger="onerec_trt")
    inner = logging.getLogger("onerec_trt.toy.inner")
    with quiet("onerec_trt.toy"):
        inner.info("not shown")
        inner.warning("shown")
    inner.info("shown again")
    assert caplog.messages == ["shown", "shown again"]

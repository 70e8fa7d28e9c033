"""Issue 30, "the first hour": verify as Polygraphy's users and a reader of verify.md meet it.
The by-hand route passes with the gates, the table parses as Markdown, progress shows, an
inconclusive verdict says what it means, and no deprecated Polygraphy API is used."""

import contextlib
import io
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from test_verify import _opts, _verify, _wrong_scales

from helpers import markdown_tables
from onerec_trt.verify import VerifyReport
from onerec_trt.verify.report import verdict_note
from onerec_trt.verify.script import SCRIPT

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def verified(tiny_pipeline, tmp_path_factory):
    """One verify run of the tiny FP8 graph: (out folder, report, its stderr, its warnings)."""
    out = tmp_path_factory.mktemp("verify") / "v"
    err = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        report = _verify(_opts(tiny_pipeline, out))
    return out, report, err.getvalue(), caught


def _run(argv: list, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_the_written_polygraphy_script_passes_with_the_gates(verified, tiny_pipeline, tmp_path):
    """Polygraphy's plain comparison fails items/codes by design; the script verify writes
    beside verify.md encodes the gates and exits 0 on this pass (saved runs and a rerun), 1 on a
    graph the gates fail."""
    out, report, _, _ = verified
    assert report.passed
    script = out / SCRIPT
    saved = _run([sys.executable, script], cwd=tmp_path)
    assert saved.returncode == 0, saved.stdout + saved.stderr
    assert f"overlap@10: pass (mean {report.overlap_at_10:.4f}, gate >= 0.94)" in saved.stdout
    assert saved.stdout.rstrip().endswith("PASS")
    rerun = _run([sys.executable, script, "--rerun"], cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "candidate:fp8.cpu.onnx:rerun" in rerun.stdout + rerun.stderr
    opts = _opts(tiny_pipeline, tmp_path / "wrong")
    opts.candidate = str(_wrong_scales(tiny_pipeline, tmp_path / "wrong.onnx"))
    assert not _verify(opts).passed
    failing = _run([sys.executable, tmp_path / "wrong" / SCRIPT], cwd=tmp_path)
    assert failing.returncode == 1 and "overlap@10: FAIL" in failing.stdout


@pytest.mark.skipif(not (BIN / "polygraphy").exists(), reason="the polygraphy CLI is absent")
def test_the_polygraphy_command_in_verify_md_passes(verified):
    """The command verify.md gives is run as written (the real CLI): it passes."""
    out, _, _, _ = verified
    md = (out / "verify.md").read_text()
    (command,) = [line for line in md.splitlines() if line.startswith("polygraphy run ")]
    assert "--graph-optimization-level ORT_ENABLE_BASIC" in command
    run = _run([BIN / "polygraphy", *shlex.split(command)[1:]])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "PASSED" in run.stdout + run.stderr


@pytest.mark.skipif(not (BIN / "polygraphy").exists(), reason="the polygraphy CLI is absent")
def test_the_fp8_graph_runs_in_polygraphy_at_ort_enable_basic(verified, tiny_pipeline):
    """What docs/verify.md says: ONNX Runtime's default level fails on the FP8 graph (its QDQ
    fusion), ORT_ENABLE_BASIC runs it. If the default starts passing, the note is stale."""
    out, _, _, _ = verified
    base = [BIN / "polygraphy", "run", tiny_pipeline / "fp8" / "fp8.cpu.onnx", "--onnxrt",
            "--load-inputs", out / "inputs.json"]
    assert _run(base).returncode != 0
    basic = _run([*base, "--graph-optimization-level", "ORT_ENABLE_BASIC"])
    assert basic.returncode == 0, basic.stdout[-3000:] + basic.stderr[-3000:]


def test_verify_md_tables_parse_as_markdown(verified):
    """Every table of verify.md has its header's columns in every row (the ``|`` of
    ``p99 |diff|`` escaped), and no reason line is read as a row."""
    out, report, _, _ = verified
    tables = markdown_tables((out / "verify.md").read_text())
    assert len(tables) == 3  # gates, Recall/NDCG, agreement
    for table in tables:
        assert all(len(row) == len(table[0]) for row in table)
        assert all(cell for row in table for cell in row[:1])
    gates = {row[0]: row for row in tables[0][1:]}
    assert list(gates) == list(report.gates)
    assert gates["scores_tensor"][2].startswith("p99 |diff| <= 0.5 or rel <= 0.1")


def test_standalone_verify_shows_progress(verified):
    """Issue 30: verify printed nothing while it ran; without a terminal, a line per 10%."""
    _, report, err, _ = verified
    lines = [line for line in err.splitlines() if line.startswith("verify: ")]
    assert lines and lines[-1].startswith(f"verify: reference, then candidate: "
                                          f"{2 * report.users}/{2 * report.users} user (100%)")


def test_verify_uses_no_deprecated_polygraphy_api(verified):
    """CompareFunc.simple is deprecated (removed in Polygraphy 0.60): SimpleCompareFunc."""
    _, _, _, caught = verified
    assert not [w for w in caught if "Polygraphy" in str(w.message)
                and issubclass(w.category, DeprecationWarning)]
    src = Path(__file__).parents[2] / "src" / "onerec_trt"
    assert not [p for p in src.rglob("*.py") if "CompareFunc.simple" in p.read_text()]


def test_polygraphy_is_bounded_below_0_60():
    import tomllib
    from importlib.metadata import version

    from packaging.requirements import Requirement

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    (req,) = [Requirement(r) for r in pyproject["project"]["optional-dependencies"]["stack"]
              if r.startswith("polygraphy")]
    assert "0.60" not in req.specifier and "0.59.9" in req.specifier
    assert version("polygraphy") in req.specifier


def _report(users: int, needed: int | None, failed: bool = False) -> VerifyReport:
    gates = {"overlap@10": {"value": 0.9512, "threshold": ">= 0.94", "pass": True,
                            "decision": "pass", "reason": "r"},
             "recall@10_relative_change": {"value": -0.004, "ci": [-0.03, 0.02],
                                           "threshold": "margin -0.01 (95% CI)", "pass": True,
                                           "decision": "inconclusive", "reason": "r",
                                           "users_needed": needed},
             "finite_scores": {"value": 1 if failed else 0, "threshold": "0", "pass": not failed,
                               "decision": "fail" if failed else "pass", "reason": "r"}}
    return VerifyReport(passed=not failed, gates=gates, metrics={}, users=users, dataset="ml-1m",
                        split="test", backends={}, seconds={},
                        options={"gates": {"max_recall_drop": 0.01, "max_ndcg_drop": 0.01}})


def test_an_inconclusive_verdict_says_what_it_means_and_what_decided_the_pass():
    """Issue 30: on ML-1M the Recall/NDCG gates are inconclusive by construction (about 61,000
    users needed, 6,040 exist); the verdict says so and that the overlap gate decided."""
    note = verdict_note(_report(6040, 61000))
    assert "the 6,040 users measured are too few to show whether recall@10 lost less than " \
           "the 1% margin or more (about 61,000 users would decide); it is not a failure" in note
    assert "The pass was decided by the overlap gate: overlap@10 0.9512 >= 0.94" in note
    assert len(re.findall(r"\.( |$)", note)) == 2  # two sentences
    assert "The run failed on finite_scores." in verdict_note(_report(1000, 2000, failed=True))


def test_the_verdict_note_is_in_verify_md_and_the_cli_output(verified, tiny_pipeline, tmp_path):
    out, report, _, _ = verified
    assert report.inconclusive  # 60 users: the tiny pipeline's Recall/NDCG cannot decide
    md = (out / "verify.md").read_text()
    assert md.startswith(f"# verify: {report.verdict}\n\n{verdict_note(report)}\n")
    run = _run([BIN / "onerec-trt", "verify", "--model", tiny_pipeline / "model",
                "--reference", tiny_pipeline / "onnx" / "reference.cpu.onnx",
                "--candidate", tiny_pipeline / "fp8" / "fp8.cpu.onnx", "--users", 60,
                "--batch", 25, "--out", tmp_path / "cli"])
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"# verify: {report.verdict}\n\nInconclusive means the 60 users")
    assert "The pass was decided by the overlap gate" in run.stdout


def test_no_polygraphy_cli_command_for_a_reference_onnx_runtime_cannot_load_alone(verified):
    """A plugin graph or an engine as the reference: verify.md points to the script only."""
    from dataclasses import replace

    from onerec_trt.verify.report import format_markdown

    _, report, _, _ = verified
    for spec, kind in (("runs/x/plugins/fp8.plugins.cpu.onnx", "ort"),
                       ("runs/x/engines/fp8.plan", "trt")):
        backends = {**report.backends,
                    "reference": {**report.backends["reference"], "spec": spec, "kind": kind}}
        md = format_markdown(replace(report, options={**report.options, "reference": spec},
                                     backends=backends))
        assert "polygraphy run" not in md and f"python {report.options['out']}/{SCRIPT}" in md

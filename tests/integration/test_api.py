"""The public Python API (docs/api.md): its example runs as written, it is as safe as the CLI,
and importing it stays light."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import onerec_trt
from onerec_trt.model.checkpoint import SHIPPED

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _example() -> str:
    """The first ```python block of docs/api.md."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, f"no python block in {DOC}"
    return blocks[0]


def test_the_example_is_under_ten_lines():
    assert len(_example().strip().splitlines()) < 10


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED.is_dir(), reason=f"no shipped model in {SHIPPED}")
def test_the_docs_example_runs_verbatim(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(_example(), str(DOC), "exec"), {"__name__": "api_example"})
    for folder, file in (("onnx", "export.json"), ("fp8", "quantize_report.json"),
                         ("verify", "verify.json"), ("triton", "repository.json")):
        assert (tmp_path / "run" / folder / file).is_file(), (folder, file)
        assert (tmp_path / "run" / folder / "manifest.json").is_file(), folder
    last = capsys.readouterr().out.strip().splitlines()[-1]  # print(report.verdict, ...)
    assert last.split()[0] in ("PASS", "FAIL"), last


def test_every_public_name_resolves_and_is_listed():
    for name in onerec_trt.__all__:
        assert getattr(onerec_trt, name) is not None, name
    assert {"export", "ExportOptions", "quantize", "verify", "export_repository",
            "RepositoryOptions", "run", "RunOptions"} <= set(dir(onerec_trt))
    with pytest.raises(AttributeError):
        onerec_trt.no_such_stage  # noqa: B018


def test_a_stage_named_like_its_package_stays_the_function():
    """Importing ``onerec_trt.export`` (the package) keeps ``onerec_trt.export`` the stage."""
    import onerec_trt.export.stage  # noqa: F401
    import onerec_trt.run  # noqa: F401
    from onerec_trt import export, run
    from onerec_trt.export import ExportOptions

    assert callable(export) and export.__name__ == "export"
    assert run.__name__ == "run" and run.__module__ == "onerec_trt.run"
    assert ExportOptions is onerec_trt.ExportOptions
    assert sys.modules["onerec_trt.export"].ExportOptions is ExportOptions


def test_importing_the_package_imports_nothing_heavy():
    code = ("import sys, onerec_trt; onerec_trt.ExportOptions; "
            "print(sorted({'torch', 'onnx', 'numpy'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_quantize_from_python_refuses_its_input_as_out(tmp_path, monkeypatch):
    """``quantize(QuantizeOptions(onnx=X, out=X, force=True))``: the stage runner's refusal,
    before any work (test_safety.py checks the same on a real export folder)."""
    from onerec_trt import QuantizeOptions, UserError, quantize, stage_runner

    checked = []
    real = stage_runner.check_out
    monkeypatch.setattr(stage_runner, "check_out",
                        lambda *a, **k: checked.append(a) or real(*a, **k))
    graphs = tmp_path / "onnx"
    graphs.mkdir()
    (graphs / "export.json").write_text("{}")
    with pytest.raises(UserError, match="is an input of this command"):
        quantize(QuantizeOptions(onnx=str(graphs), out=str(graphs), force=True))
    assert (graphs / "export.json").read_text() == "{}"
    assert checked and str(checked[0][0]) == str(graphs)  # refused by the runner

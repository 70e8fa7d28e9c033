"""A model folder never chooses code (issue 28 items 6 and 14): a factory folder is loaded only
when the user names its factory, and the check comes before the named module is imported; a
factory that raises, needs an argument, has a syntax error or calls sys.exit is one line."""

import json
import os
from pathlib import Path

import pytest

from onerec_trt.errors import UserError
from onerec_trt.model.checkpoint import load_model
from onerec_trt.model.hf.trust import FACTORY_ENV, trusted_factory

FACTORY = "hf_checkpoints:onerec_factory"


@pytest.fixture(scope="module")
def factory_folder(tmp_path_factory) -> Path:
    from onerec_trt.cli import main

    out = tmp_path_factory.mktemp("factory") / "m"
    assert main(["import", "--factory", FACTORY, "--histories", "8", "--out", str(out)]) == 0
    return out


def user_module(folder: Path, name: str, body: str, monkeypatch) -> str:
    """A module of the user's (or a sender's) code, importable from ``folder``."""
    (folder / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(folder))
    return name


def hostile_copy(factory_folder: Path, tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """The factory folder as someone might send it: factory.json names a module whose import
    writes a marker file. Returns (folder, marker)."""
    import shutil

    marker = tmp_path / "imported.txt"
    name = user_module(tmp_path, f"sender_{tmp_path.name}",
                       f"open({str(marker)!r}, 'w').write('ran')\ndef make():\n    pass\n",
                       monkeypatch)
    folder = tmp_path / "sent"
    shutil.copytree(factory_folder, folder)
    record = json.loads((folder / "factory.json").read_text())
    (folder / "factory.json").write_text(json.dumps({**record, "factory": f"{name}:make"}))
    return folder, marker


def test_a_received_factory_folder_is_refused_before_its_module_is_imported(
        factory_folder, tmp_path, monkeypatch, cli):
    folder, marker = hostile_copy(factory_folder, tmp_path, monkeypatch)
    result = cli("export", "--model", folder, "--out", tmp_path / "e")
    assert result.returncode == 2 and "runs code" in result.stderr, result.stderr
    assert f"--factory sender_{tmp_path.name}:make" in result.stderr  # says what to name
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1
    assert not marker.exists() and not (tmp_path / "e").exists()


def test_a_named_factory_other_than_the_recorded_one_is_refused(factory_folder, tmp_path,
                                                                monkeypatch, cli):
    folder, marker = hostile_copy(factory_folder, tmp_path, monkeypatch)
    result = cli("export", "--model", folder, "--factory", FACTORY, "--out", tmp_path / "e")
    assert result.returncode == 2 and f"is not the factory {folder}" in result.stderr
    assert f"(sender_{tmp_path.name}:make)" in result.stderr  # the recorded name
    assert not marker.exists() and not (tmp_path / "e").exists()


def test_a_factory_record_that_is_not_module_function_is_refused(factory_folder, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(factory_folder, folder)
    (folder / "factory.json").write_text(json.dumps({"factory": "os.system('x'):y"}))
    with pytest.raises(UserError, match="not module:function"):
        load_model(folder)


def test_a_factory_record_without_its_sizes_loads_from_the_object(factory_folder, tmp_path):
    """The sizes come from the factory's catalogue (its hash was checked), not from keys of
    factory.json a damaged record may lack (a KeyError traceback before)."""
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(factory_folder, folder)
    record = json.loads((folder / "factory.json").read_text())
    del record["num_items"], record["codebook_sizes"]
    (folder / "factory.json").write_text(json.dumps(record))
    with trusted_factory(FACTORY):
        assert load_model(folder).config.num_items == 30


def test_the_python_api_loads_a_factory_folder_only_when_named(factory_folder, capsys):
    assert FACTORY_ENV not in os.environ
    with pytest.raises(UserError, match="runs code"):
        load_model(factory_folder)
    with trusted_factory(FACTORY):
        bundle = load_model(factory_folder)
    assert bundle.config.num_items == 30 and bundle.config.model_type == FACTORY
    assert FACTORY_ENV not in os.environ  # restored after the block
    assert f"running factory {FACTORY}" in capsys.readouterr().err  # says which code ran


def test_the_named_factory_does_not_outlive_the_command(factory_folder, tmp_path, cli):
    assert cli("export", "--model", factory_folder, "--factory", FACTORY, "--beam", 4,
               "--topk", 4, "--out", tmp_path / "e").returncode == 0
    assert FACTORY_ENV not in os.environ
    with pytest.raises(UserError, match="runs code"):
        load_model(factory_folder)


BROKEN = {
    "raises": ("def make():\n    raise ValueError('no weights here')\n",
               "raised ValueError: no weights here"),
    "needs an argument": ("def make(path):\n    return None\n", "raised TypeError"),
    "syntax error": ("def make(:\n", "failed: SyntaxError"),
    "exits at import": ("import sys\nsys.exit(0)\n", "failed: SystemExit"),
    "calls sys.exit(0)": ("import sys\ndef make():\n    sys.exit(0)\n",
                          "called sys.exit(0) instead of returning a model"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_factory_is_one_line_and_writes_nothing(case, tmp_path, monkeypatch, cli):
    body, message = BROKEN[case]
    name = user_module(tmp_path, f"broken_{abs(hash(case))}", body, monkeypatch)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("earlier output")
    result = cli("import", "--factory", f"{name}:make", "--out", tmp_path / "m", "--force")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1
    assert (tmp_path / "m" / "keep.txt").read_text() == "earlier output"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_run_takes_a_factory_folder_when_the_user_names_it(factory_folder, tmp_path, cli):
    from onerec_trt.layout import RunLayout

    run = RunLayout(tmp_path / "run")
    code = cli("run", "--model", factory_folder, "--factory", FACTORY, "--out", run.root,
               "--no-analyze", "--no-bench", "--verify-users", 8).returncode
    assert code in (0, 1)  # 1: the FP8 gate's verdict on an untrained model, not an error
    assert (run.onnx / "export.json").is_file() and (run.verify / "verify.json").is_file()

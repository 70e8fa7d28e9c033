"""``reports.read_stage``: the one reader of a stage's output folder, typed, with one-line user
errors for a missing folder, a file, another stage's folder and a damaged report."""

import json
from dataclasses import dataclass

import pytest

from onerec_trt.analysis import AnalysisReport
from onerec_trt.artifacts import write_json, write_manifest
from onerec_trt.errors import UserError
from onerec_trt.export import ExportReport
from onerec_trt.quantize import QuantizeReport
from onerec_trt.reports import Report, read_stage
from onerec_trt.triton.contract import RepositoryReport
from onerec_trt.verify import VerifyReport


@dataclass
class ToyReport(Report):
    STAGE, FILE = "toy", "toy.json"

    users: int
    note: str = ""


def _toy_folder(tmp_path, stage="toy", report=None):
    folder = tmp_path / "out"
    folder.mkdir()
    write_json(folder / "toy.json", {"users": 3} if report is None else report)
    write_manifest(folder, stage, {})
    return folder


def test_the_right_folder_gives_the_typed_report(tmp_path):
    report = read_stage(_toy_folder(tmp_path), ToyReport)
    assert isinstance(report, ToyReport) and report.users == 3 and report.note == ""


def test_a_folder_without_a_manifest_is_read_by_its_report_file(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    ToyReport(users=5).save(folder / "toy.json")
    assert read_stage(str(folder), ToyReport).users == 5


def test_a_missing_folder_says_which_stage_makes_it(tmp_path):
    with pytest.raises(UserError) as exc:
        read_stage(tmp_path / "nowhere", ToyReport, flag="--toy")
    assert str(exc.value) == (f"--toy folder not found: {tmp_path / 'nowhere'}\n"
                              "Note: run 'onerec-trt toy' first")


def test_a_file_instead_of_the_folder_names_the_folder_to_pass(tmp_path):
    folder = _toy_folder(tmp_path)
    with pytest.raises(UserError, match="--toy takes the toy stage's folder, not a file"):
        read_stage(folder / "toy.json", ToyReport, flag="--toy")
    with pytest.raises(UserError, match=f"Note: pass {folder}$"):
        read_stage(folder / "toy.json", ToyReport)


def test_another_stages_folder_is_refused_by_its_manifest(tmp_path):
    folder = _toy_folder(tmp_path, stage="quantize")  # even with a toy.json inside
    with pytest.raises(UserError) as exc:
        read_stage(folder, ToyReport, flag="--toy")
    assert str(exc.value).splitlines() == [
        f"--toy {folder} is not a toy folder (written by 'onerec-trt quantize')",
        "Note: pass the folder 'onerec-trt toy' wrote (its --out)"]


def test_a_folder_without_the_report_is_not_that_stages(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(UserError, match=r"is not an export folder \(no export.json\)"):
        read_stage(folder, ExportReport)


def test_the_stages_own_folder_without_its_report_is_damaged(tmp_path):
    folder = _toy_folder(tmp_path)
    (folder / "toy.json").unlink()
    with pytest.raises(UserError, match=r"lacks its toy.json\nNote: the folder is damaged"):
        read_stage(folder, ToyReport)


@pytest.mark.parametrize("damage, words", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "is not a JSON object"),
    ('{"note": "no users"}', "lacks users"),
])
def test_a_damaged_report_is_a_user_error(tmp_path, damage, words):
    folder = _toy_folder(tmp_path)
    (folder / "toy.json").write_text(damage)
    with pytest.raises(UserError, match=words):
        read_stage(folder, ToyReport)


def test_stage_reports_name_their_stage_file_and_command():
    assert (ExportReport.STAGE, ExportReport.FILE) == ("export", "export.json")
    assert (QuantizeReport.STAGE, QuantizeReport.FILE) == ("quantize", "quantize_report.json")
    assert (AnalysisReport.STAGE, VerifyReport.STAGE) == ("analyze", "verify")
    assert RepositoryReport.COMMAND == "triton export"


def test_a_report_without_a_stage_is_a_programming_error(tmp_path):
    @dataclass
    class Loose(Report):
        x: int

    with pytest.raises(TypeError):
        read_stage(tmp_path, Loose)


def test_a_broken_manifest_is_ignored(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "toy.json").write_text(json.dumps({"users": 1}))
    (folder / "manifest.json").write_text("{broken")
    assert read_stage(folder, ToyReport).users == 1

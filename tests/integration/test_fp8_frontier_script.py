"""scripts/fp8_frontier.py (the docs' lever and width tables): rows of quantize options searched
on validation users, the table, the overlaid Pareto fronts, and --reuse."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fp8_frontier.py"


def _script():
    spec = importlib.util.spec_from_file_location("fp8_frontier", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_rows_searched_tabulated_and_reused(tiny_pipeline, tmp_path):
    frontier = _script()
    model = str(tiny_pipeline / "model")
    argv = ["--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"),
            "--search-users", "20", "--test-users", "20", "--row", f"PTQ={model}",
            "--row", f"per-channel={model} --weight-scales per-channel --calib-users 32",
            "--title", "tiny levers"]
    assert frontier.main(argv) == 0
    rows = json.loads((tmp_path / "out" / "frontier.json").read_text())
    assert [r["name"] for r in rows] == ["PTQ", "per-channel"]
    for r in rows:
        assert 0.0 < r["fp8_flop_share"] <= 1.0 and r["overlap_lower_95"] >= 0.95
        assert r["all_fp8"]["step"] == "all but heads" and r["pareto"]
        assert r["width"] == 16 and r["parameters"] > 0 and r["test"]["users"] == 20
        assert set(r["predicted_speedup"]) == {"H100-SXM", "H200"}
    text = (tmp_path / "out" / "frontier.md").read_text()
    assert text.startswith("# tiny levers") and "| per-channel |" in text
    assert (tmp_path / "out" / "frontier.png").stat().st_size > 0
    assert (tmp_path / "out" / "manifest.json").is_file()
    reports = sorted((tmp_path / "work").glob("*/fp8/quantize_report.json"))
    assert len(reports) == 2
    before = [r.stat().st_mtime_ns for r in reports]
    assert frontier.main([*argv, "--reuse", "--force"]) == 0  # nothing searched again
    assert [r.stat().st_mtime_ns for r in reports] == before
    assert json.loads((tmp_path / "out" / "frontier.json").read_text())[1]["fp8_flop_share"] \
        == rows[1]["fp8_flop_share"]

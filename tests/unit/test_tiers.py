"""The two test tiers (docs/architecture.md, "Tests"): every test file lives in ``tests/unit``
or ``tests/integration``, and a unit test starts no process, builds no shared run fixture and
starts no server, so ``make test-fast`` stays a developer's loop."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# what makes a test an integration test
PROCESS_MODULES = {"subprocess", "multiprocessing", "concurrent.futures"}
SERVER_MODULES = {"onerec_trt.triton.server", "tritonclient", "tritonclient.http"}
SHARED_FIXTURES = {"tiny_pipeline", "shipped_pipeline"}


def imported_modules(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def requested_fixtures(tree: ast.AST) -> set[str]:
    """Parameter names of every function: pytest fixtures are requested by name."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names |= {a.arg for a in node.args.args + node.args.kwonlyargs}
    return names


def unit_tier_breaches(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    modules = imported_modules(tree)
    breaches = [f"imports {m}" for m in sorted(modules & (PROCESS_MODULES | SERVER_MODULES))]
    breaches += [f"uses the shared fixture {f}"
                 for f in sorted(requested_fixtures(tree) & SHARED_FIXTURES)]
    return breaches


def test_every_test_file_is_in_a_tier_under_its_own_name():
    stray = sorted(p.name for p in TESTS.glob("test_*.py"))
    assert not stray, f"move into tests/unit or tests/integration: {stray}"
    names = [p.name for p in TESTS.glob("*/test_*.py")]
    twice = sorted({n for n in names if names.count(n) > 1})
    assert not twice, f"pytest imports test files by name: rename one of each {twice}"
    assert sorted((TESTS / "unit").glob("test_*.py")), "no unit tests found"
    assert sorted((TESTS / "integration").glob("test_*.py")), "no integration tests found"


def test_unit_tests_start_no_process_no_server_and_use_no_shared_run():
    found = {p.name: unit_tier_breaches(p) for p in sorted((TESTS / "unit").glob("test_*.py"))}
    breaches = {name: b for name, b in found.items() if b}
    assert not breaches, f"belong in tests/integration: {breaches}"


def test_the_tier_check_finds_what_makes_an_integration_test(tmp_path):
    """The check above cannot pass by reading nothing."""
    sample = tmp_path / "test_sample.py"
    sample.write_text("import subprocess\nfrom onerec_trt.triton.server import TritonServer\n"
                      "def test_x(tiny_pipeline):\n    pass\n")
    assert unit_tier_breaches(sample) == [
        "imports onerec_trt.triton.server", "imports subprocess",
        "uses the shared fixture tiny_pipeline"]

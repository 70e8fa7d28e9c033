"""The package boundaries docs/architecture.md draws, checked on the source: every import goes
to the same or a lower layer of the pipeline (so there is no cycle), and only the generation
loop calls a model's decode step."""

import ast
from pathlib import Path

import onerec_trt

SRC = Path(onerec_trt.__file__).resolve().parent

# lowest first; docs/architecture.md shows the same table
LAYERS = [
    {"errors", "artifacts", "layout", "reports", "tables", "metrics", "provenance", "graphs",
     "progress"},
    {"data"},
    {"model"},
    {"evaluate"},
    {"analysis"},
    {"export"},
    {"quantize"},
    {"plugins"},
    {"lint"},
    {"engines"},
    {"builder"},
    {"verify"},
    {"triton"},
    {"bench"},
    {"run", "commands", "cli"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def unit(module: str) -> str:
    """'onerec_trt.export.stage' -> 'export'; 'onerec_trt.layout' -> 'layout'."""
    return module.split(".")[1]


def imports(path: Path) -> set[str]:
    """Every onerec_trt module a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("onerec_trt."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("onerec_trt.")}
    return found


def sources() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] in ("shipped",) or len(rel.parts) == 1 and rel.name == "__init__.py":
            continue
        name = rel.parts[0].removesuffix(".py")
        out.append((name, path))
    return out


def test_every_unit_has_a_layer():
    assert {name for name, _ in sources()} <= set(LAYER)


def test_imports_never_go_up_the_pipeline():
    upward = []
    for name, path in sources():
        for module in imports(path):
            target = unit(module)
            if LAYER[target] > LAYER[name]:
                upward.append(f"{path.relative_to(SRC)} imports {module}")
    assert not upward, "\n".join(upward)


def test_only_the_generation_loop_calls_decode_step():
    callers = []
    for _, path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "decode_step":
                callers.append(str(path.relative_to(SRC)))
    assert set(callers) == {"model/generate.py"}

"""The package boundaries docs/architecture.md draws, checked on the source: every import goes
to the same or a lower layer of the pipeline, no files import each other in a circle, and only
the generation loop calls a model's decode step. An import inside a function is still an import:
every ``import`` and ``from`` anywhere in a file counts (relative imports resolved)."""

import ast
from pathlib import Path

import onerec_trt

SRC = Path(onerec_trt.__file__).resolve().parent

# lowest first; docs/architecture.md shows the same table
LAYERS = [
    {"errors", "artifacts", "layout", "reports", "tables", "metrics", "provenance", "graphs",
     "progress", "fp8_format", "roofline", "stage_runner"},
    {"data"},
    {"model"},
    {"evaluate"},
    {"analysis"},
    {"export"},
    {"quantize"},
    {"plugins"},
    {"lint"},
    {"backends"},
    {"builder"},
    {"verify"},
    {"triton"},
    {"bench"},
    {"run", "commands", "cli", "__init__"},  # __init__: the public API (onerec_trt/__init__.py)
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def unit(module: str) -> str:
    """'onerec_trt.export.stage' -> 'export'; 'onerec_trt.layout' -> 'layout'."""
    return module.split(".")[1]


def module_of(path: Path, root: Path = SRC) -> str:
    """<root>/model/hf/loader.py -> 'onerec_trt.model.hf.loader'; a package's __init__.py -> the
    package's name."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, root: Path = SRC) -> set[str]:
    """Every module name a file imports, anywhere in it (functions included): for
    ``from A import b`` both ``A`` and ``A.b`` (b may be a module); relative names resolved."""
    own = module_of(path, root).split(".")
    package = own if path.name == "__init__.py" else own[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return found


def project_files(root: Path = SRC) -> dict[str, Path]:
    """Module name -> file, for every file of the package at ``root``."""
    return {module_of(p, root): p for p in sorted(root.rglob("*.py"))}


def files_imported(path: Path, files: dict[str, Path], root: Path = SRC) -> set[str]:
    """The package's modules that ``path`` imports, each name resolved to the longest name that
    is a file (``from onerec_trt.model.checkpoint import load_model``: model/checkpoint.py)."""
    out = set()
    for name in imported_names(path, root):
        while name and name not in files:
            name = name.rpartition(".")[0]
        if name:
            out.add(name)
    return out - {module_of(path, root)}


def imports(path: Path) -> set[str]:
    """Every onerec_trt module a file imports, at module level or inside functions."""
    return {m for m in files_imported(path, project_files()) if m != "onerec_trt"}


def sources() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] in ("shipped",):
            continue
        name = rel.parts[0].removesuffix(".py")
        out.append((name, path))
    return out


def import_circles(root: Path = SRC) -> list[list[str]]:
    """Groups of files that import each other, directly or through other files (sorted).

    An import of a package's ``__init__.py`` is not followed: a stage package's ``__init__``
    is its light public face (options, report, entry function), whose entry function imports
    the implementation only when called (docs/architecture.md)."""
    files = project_files(root)
    graph = {name: {m for m in files_imported(path, files, root)
                    if files[m].name != "__init__.py"} for name, path in files.items()}

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    reached = {name: reach(name) for name in graph}
    groups = {tuple(sorted(n for n in reached[name] if name in reached[n]))
              for name in graph if name in reached[name]}
    return sorted(list(g) for g in groups)


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


def test_no_files_import_each_other_in_a_circle():
    circles = [" <-> ".join(group) for group in import_circles()]
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_a_circle_through_a_function_level_or_relative_import_is_found(tmp_path):
    """The circle check itself: an import inside a function closes a circle like any other."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    for name in ("__init__.py", "sub/__init__.py", "sub/c.py"):
        (pkg / name).write_text("")
    (pkg / "a.py").write_text("from pkg.sub.b import f\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import g\n")
    (pkg / "d.py").write_text("def h():\n    import pkg.a\n")  # into the circle, not part of it
    assert import_circles(pkg) == [["pkg.a", "pkg.sub.b"]]


def test_only_the_generation_loop_calls_decode_step():
    callers = []
    for _, path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "decode_step":
                callers.append(str(path.relative_to(SRC)))
    assert set(callers) == {"model/generate.py"}


def test_quantize_and_bench_do_not_import_the_analyze_stage():
    """E4M3_MAX and the request-FLOP model live on the ground floor (fp8_format.py,
    roofline.py): quantize and bench read them there, not from analysis/."""
    found = [f"{path.relative_to(SRC)} imports {module}"
             for name, path in sources() if name in ("quantize", "bench")
             for module in imports(path) if unit(module) == "analysis"]
    assert not found, "\n".join(found)


# what reading a backend string looks like: verify's specs ("FILE.onnx", "torch:bf16") and
# bench's names ("ort-plugins-fp8") taken apart by suffix, prefix or separator
SPEC_LITERALS = {"torch:fp32", "torch:bf16", "-plugins-"}
SPEC_PARTS = {".onnx", ".plan", "torch", "torch:", "ort-", "trt-", "-fp8", "-bf16", "-fp32"}


def backend_string_parsing(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in SPEC_LITERALS:
            found.append(f"line {node.lineno}: the literal {node.value!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("endswith", "startswith", "split", "rsplit", "partition") \
                and any(isinstance(a, ast.Constant) and a.value in SPEC_PARTS for a in node.args):
            found.append(f"line {node.lineno}: .{node.func.attr}({ast.unparse(node.args[0])})")
        elif isinstance(node, ast.FunctionDef) and node.name == "make_runner":
            found.append(f"line {node.lineno}: def make_runner")
    return found


def test_only_commands_parse_backend_strings():
    """Issue 29 item 4: verify and bench take backend objects; the strings the CLI reads become
    objects in commands/backends.py alone (bench's names are keys of its table, never split)."""
    found = [f"{path.relative_to(SRC)} {what}" for name, path in sources()
             if name not in ("commands", "cli")
             for what in backend_string_parsing(ast.parse(path.read_text()))]
    assert not found, "\n".join(found)
    parser = (SRC / "commands" / "backends.py").read_text()
    assert backend_string_parsing(ast.parse(parser)), "the check no longer sees the parser"

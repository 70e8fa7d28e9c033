"""Which folders bench reads: the options given, else the run folder that holds the model's graphs.

``--onnx`` given: its parent is the run folder, and ``--fp8``, ``--plugins`` and ``--engines``
default to the folders beside it (``fp8``, ``plugins``, ``engines``), as ``onerec-trt run``
lays them out. ``--onnx`` not given: the first run folder whose ``onnx/reference.cpu.onnx`` was
exported from ``--model`` (by the model hash export records): ``runs/<model name>``, the
folder holding the model folder, ``runs/default``, then every other ``runs/*``. None found
while a backend needs the export stage's graphs: bench exports them itself into ``<out>/onnx``
(inside its staged folder, so they are part of its artifact) and skips the backends that need
graphs it does not make (fp8, plugins, engines), each with the command that makes them. None
found while only those are requested: a user error naming every folder looked at.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from onerec_trt.errors import user_error
from onerec_trt.layout import CPU_GRAPH, DEFAULT_RUN, RunLayout
from onerec_trt.provenance import recorded_model

log = logging.getLogger(__name__)

STAGE_FOLDERS = ("onnx", "fp8", "plugins", "engines")  # BenchOptions fields, RunLayout folders


@dataclass
class Folders:
    """The four stage folders bench reads (None: not needed by the requested backends)."""

    onnx: Path | None
    fp8: Path | None
    plugins: Path | None
    engines: Path | None
    out: Path  # --out, else the run folder's bench/
    found_in: Path | None = None  # the run folder found for the model (None: options given)
    exported: bool = False  # no run folder held the graphs: bench exports them into onnx
    looked: list[str] | None = None  # with exported: every graph looked at, and why it did not fit


def needed_folders(names: list[str]) -> set[str]:
    """The stage folders the backends ``names`` read."""
    from onerec_trt.bench.backends import CHOICES

    return {CHOICES[name].folder for name in names} - {None}


RUNS = DEFAULT_RUN.root.parent  # runs/


def named_run(model: str) -> Path:
    """``runs/<name>``: a shipped model's name, else the model folder's name."""
    from onerec_trt.model.checkpoint import SHIPPED_MODELS, resolve_model_path

    return RUNS / (model if model in SHIPPED_MODELS else resolve_model_path(model).name)


def candidate_runs(model: str, runs: Path = RUNS) -> tuple[list[Path], list[Path]]:
    """(the run folders most likely to hold ``model``'s stages, in order; every other folder
    in ``runs``)."""
    from onerec_trt.model.checkpoint import SHIPPED_MODELS, resolve_model_path

    order = [named_run(model)]
    if model not in SHIPPED_MODELS:
        order.append(resolve_model_path(model).parent)
    preferred = list(dict.fromkeys([*order, DEFAULT_RUN.root]))
    others = sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
    return preferred, [p for p in others if p not in preferred]


def _why_not(root: Path, sha: str | None, preferred: bool) -> str | None:
    """Why ``root`` is not the model's run folder (None: it is). Outside the preferred folders
    only a recorded hash equal to the model's counts."""
    graph = RunLayout(root).onnx / CPU_GRAPH
    if not graph.is_file():
        return f"{graph} (not found)"
    recorded = recorded_model(graph)
    if sha and recorded and recorded != sha:
        return f"{graph} (exported from another model, hash {recorded[:12]})"
    if not preferred and not (sha and recorded == sha):
        return f"{graph} (not recorded as exported from this model)"
    return None


def find_run(model: str, sha: str | None) -> tuple[Path | None, list[str]]:
    """(the first run folder holding ``model``'s exported graphs, or None; every folder passed
    over, with why: the preferred ones always, the others where they hold a graph)."""
    preferred, others = candidate_runs(model)
    passed = []
    for root in preferred + others:
        why = _why_not(root, sha, root in preferred)
        if why is None:
            return root, passed
        if root in preferred or not why.endswith("(not found)"):
            passed.append(why)
    return None, passed


def resolve_folders(opts, sha: str | None, names: list[str]) -> Folders:
    """Bench's stage folders from ``opts`` (a ``BenchOptions``) and the requested backends."""
    given = {f: getattr(opts, f) for f in STAGE_FOLDERS}
    missing = needed_folders(names) - {f for f, v in given.items() if v}
    root, found_in, passed = None, None, None
    if given["onnx"]:
        root = Path(given["onnx"]).parent
    elif missing:
        found_in, passed = find_run(opts.model, sha)
        if found_in is None and "onnx" not in missing:
            run = named_run(opts.model)
            raise user_error(
                f"no exported graphs of --model {opts.model}: looked for {'; '.join(passed)}",
                f"export and quantize it first ('onerec-trt export --model {opts.model} --out "
                f"{run}/onnx', then 'onerec-trt quantize --model {opts.model} --onnx {run}/onnx "
                f"--out {run}/fp8'), pass --onnx/--fp8, or time torch alone with --backends "
                f"torch-fp32,torch-bf16")
        root = found_in
    folders = {f: Path(v) if v else (root / f if root else None) for f, v in given.items()}
    out = Path(opts.out) if opts.out else (root or named_run(opts.model)) / "bench"
    exported = not given["onnx"] and "onnx" in missing and found_in is None
    if exported:
        folders["onnx"] = out / "onnx"
    return Folders(**folders, out=out, found_in=found_in, exported=exported,
                   looked=passed if exported else None)


def not_made(names: list[str], folders: Folders, model: str) -> dict[str, str]:
    """{backend: why it is skipped} for the backends needing graphs bench did not export itself
    (fp8, plugins, engines), each with the command that makes them."""
    if not folders.exported:
        return {}
    onnx, beside = folders.onnx, folders.out.parent
    make = {
        "fp8": f"onerec-trt quantize --model {model} --onnx {onnx} --out {beside / 'fp8'}",
        "plugins": f"onerec-trt plugins --onnx {onnx} --fp8 {beside / 'fp8'} --out "
                   f"{beside / 'plugins'}",
        "engines": f"onerec-trt build --onnx {onnx}/reference.bf16.onnx --out "
                   f"{beside / 'engines'} (on a GPU with TensorRT)",
    }
    why = {}
    for name in names:
        need = needed_folders([name]) - {"onnx"}
        folder = next(iter(need), None)
        if folder and getattr(folders, folder) is None:
            why[name] = (f"needs the {folder} stage's graphs, which bench does not make (it "
                         f"exported only {onnx}): run '{make[folder]}', then pass --{folder} "
                         f"{beside / folder}")
    return why


def export_graphs(opts, into: Path) -> dict:
    """Export ``opts.model``'s graphs into ``into`` (inside bench's staged folder) with the
    bench's beam and top-K where given, else export's defaults; returns what the manifest
    records (the export options, ``out`` as it will be once the bench's folder is in place)."""
    from dataclasses import asdict

    from onerec_trt.export import ExportOptions, export
    from onerec_trt.stage_runner import quiet

    beam = opts.beam or ExportOptions.beam
    options = ExportOptions(model=opts.model, out=str(into), beam=beam,
                            topk=opts.topk or min(ExportOptions.topk, beam))
    with quiet("onerec_trt.export"):  # the line below says what happened
        export(options)
    final = str(Path(opts.out) / "onnx")
    log.info(f"exported the graphs of --model {opts.model} into {final} (no run folder held them; "
             f"beam {options.beam}, top-K {options.topk})")
    return {"into": final, "options": {**asdict(options), "out": final}}


def final_paths(value, tmp: Path, out: str):
    """``value`` (bench.json's dict) with the staged folder's paths as they will be."""
    if isinstance(value, dict):
        return {k: final_paths(v, tmp, out) for k, v in value.items()}
    if isinstance(value, list):
        return [final_paths(v, tmp, out) for v in value]
    if isinstance(value, str) and str(tmp) in value:
        return value.replace(str(tmp), out)
    return value

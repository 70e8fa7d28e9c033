"""The plugins stage: write the plugin-bearing graphs beside the standard-op ones.

For each exported graph found in a folder (the export folder, the quantize folder) it writes
``*.plugins.onnx`` (for TensorRT: bf16 logits into the plugins where the graph has them) and
``*.plugins.cpu.onnx`` (the CPU rendering, run by ONNX Runtime with the custom ops), then runs
both CPU graphs on a few histories of real item ids and requires the same items. It records
``plugins.json`` and adds the new files to the folder's manifest.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from tqdm import tqdm

from onerec_trt.artifacts import MANIFEST, sha256_file, write_atomic, write_json
from onerec_trt.errors import user_error

# source graph -> (plugin graph, feed bf16 logits to the plugins)
GRAPHS = {
    "reference.bf16.onnx": ("reference.plugins.onnx", True),
    "reference.cpu.onnx": ("reference.plugins.cpu.onnx", False),
    "fp8.onnx": ("fp8.plugins.onnx", True),
    "fp8.cpu.onnx": ("fp8.plugins.cpu.onnx", False),
}
REPORT = "plugins.json"


@dataclass
class PluginSwapOptions:
    onnx: str | None = "runs/default/onnx"  # the export stage's folder
    fp8: str | None = None  # the quantize stage's folder
    check_users: int = 32  # synthetic histories both CPU graphs must agree on (0: skip)
    seed: int = 0
    force: bool = False  # replace existing plugin graphs


def swap(opts: PluginSwapOptions, log=print) -> dict:
    """Swap every graph in ``opts.onnx`` and ``opts.fp8``; returns {folder: report}."""
    folders = [f for f in (opts.onnx, opts.fp8) if f]
    if not folders:
        raise user_error("nothing to swap", "pass --onnx and/or --fp8")
    if opts.check_users < 0:
        raise user_error(f"--check-users {opts.check_users} must be >= 0")
    return {folder: swap_folder(folder, opts, log) for folder in folders}


def swap_folder(folder: str | Path, opts: PluginSwapOptions | None = None, log=print,
                update_manifest: bool = True) -> dict:
    """Swap the graphs of one folder (``export --plugins`` calls this on its output folder,
    with ``update_manifest=False`` when it writes the manifest itself afterwards)."""
    from onerec_trt.plugins.graph_swap import swap_graph
    from onerec_trt.plugins.match import PatternError

    opts = opts or PluginSwapOptions()
    folder = Path(folder)
    sources = [name for name in GRAPHS if (folder / name).is_file()]
    if not sources:
        raise user_error(f"no exported graph in {folder}",
                         f"expected one of {', '.join(GRAPHS)} (run export / quantize first)")
    existing = [GRAPHS[s][0] for s in sources if (folder / GRAPHS[s][0]).exists()]
    if existing and not opts.force:
        raise user_error(f"{folder} already has {', '.join(existing)}", "pass --force")
    t0 = time.perf_counter()
    graphs = {}
    for name in tqdm(sources, desc="plugin swap", unit="graph", leave=False):
        target, keep_bf16 = GRAPHS[name]
        try:
            result = swap_graph(onnx.load(str(folder / name)), keep_bf16_logits=keep_bf16)
        except (ValueError, PatternError) as exc:
            raise user_error(f"cannot swap {folder / name}: {exc}") from None
        write_atomic(folder / target, lambda tmp, m=result.model: onnx.save(m, str(tmp)))
        graphs[target] = {"source": name, **result.summary()}
    check = {}
    for name in sources:
        target = GRAPHS[name][0]
        if name.endswith(".cpu.onnx") and opts.check_users:
            check[target] = check_agreement(folder / name, folder / target, opts.check_users,
                                            opts.seed)
    report = {"options": asdict(opts), "graphs": graphs, "cpu_agreement": check,
              "seconds": time.perf_counter() - t0}
    write_json(folder / REPORT, report)
    if update_manifest:
        _add_to_manifest(folder, [*graphs, REPORT], report)
    shown = ", ".join(f"{t} ({g['nodes_after']} nodes)" for t, g in graphs.items())
    agreed = ", ".join(f"{t}: {c['identical_users']}/{c['users']} users with identical items"
                       for t, c in check.items()) or "no CPU check"
    log(f"plugin graphs in {folder}: {shown}; {agreed}; {report['seconds']:.1f}s")
    return report


def check_agreement(standard: Path, plugins: Path, users: int, seed: int = 0) -> dict:
    """Run both CPU graphs on ``users`` histories of real item ids (the trie's leaf items);
    raise if any user's items differ."""
    from onerec_trt.engines.onnxrt import make_session
    from onerec_trt.plugins.ort_ops import plugin_session

    plug = plugin_session(plugins)
    leaf = next(numpy_helper.to_array(t) for t in onnx.load(str(plugins)).graph.initializer
                if t.name.endswith("_trie_leaf_item"))
    length = plug.get_inputs()[0].shape[1]
    rng = np.random.default_rng(seed)
    history = rng.choice(leaf, size=(users, length)).astype(np.int64)
    history[np.arange(length)[None, :] < rng.integers(0, length, (users, 1))] = 0  # left pad
    a = make_session(standard).run(None, {"history": history})
    b = plug.run(None, {"history": history})
    same = (a[0] == b[0]).all(axis=1)
    result = {"users": users, "identical_users": int(same.sum()),
              "codes_identical": bool(np.array_equal(a[2], b[2])),
              "max_abs_score_diff": float(np.abs(a[1] - b[1]).max())}
    if not same.all():
        raise RuntimeError(f"{plugins.name}: items differ from {standard.name} for "
                           f"{users - int(same.sum())} of {users} synthetic users: {result}")
    return result


def _add_to_manifest(folder: Path, names: list[str], report: dict) -> None:
    path = folder / MANIFEST
    manifest = json.loads(path.read_text()) if path.is_file() else {"files": {}}
    manifest.setdefault("files", {}).update({n: sha256_file(folder / n) for n in names})
    manifest["plugins"] = {"options": report["options"], "graphs": sorted(report["graphs"]),
                           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_json(path, manifest)

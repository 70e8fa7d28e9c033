"""``plugins()``'s body: swap every exported graph's beam steps for plugin nodes.

For each graph found in the export and quantize folders it writes, into its own folder,
``*.plugins.onnx`` (for TensorRT: bf16 logits into the plugins where the graph has them) and
``*.plugins.cpu.onnx`` (the CPU rendering, run by ONNX Runtime with the custom ops), then runs
both CPU graphs on a few histories of real item ids and requires the same items.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from onerec_trt.errors import user_error
from onerec_trt.graphs import check_data_files
from onerec_trt.layout import PLUGIN_GRAPHS, PLUGINS_JSON
from onerec_trt.plugins import PluginsOptions, PluginsReport
from onerec_trt.progress import progress_bar
from onerec_trt.provenance import recorded_model
from onerec_trt.stage_runner import StagedRun, check_stage_out, run_stage

log = logging.getLogger(__name__)


def _sources(opts: PluginsOptions) -> list[Path]:
    folders = [Path(f) for f in (opts.onnx, opts.fp8) if f]
    if not folders:
        raise user_error("nothing to swap", "pass --onnx and/or --fp8")
    if opts.check_users < 0:
        raise user_error(f"--check-users {opts.check_users} must be >= 0")
    sources = []
    for folder in folders:
        found = [folder / name for name in PLUGIN_GRAPHS if (folder / name).is_file()]
        if not found:
            raise user_error(f"no exported graph in {folder}",
                             f"expected one of {', '.join(PLUGIN_GRAPHS)} (run export / "
                             "quantize first)")
        sources += found
    for source in sources:
        check_data_files(source)  # every graph with its weights, before any work
    models = {recorded_model(s) for s in sources} - {None}
    if len(models) > 1:
        raise user_error(f"{', '.join(map(str, folders))} were made from different models",
                         "swap the export and quantize folders of one model")
    return sources


def run_plugins(opts: PluginsOptions) -> PluginsReport:
    check_stage_out(opts)  # --out first, before any other check or work
    sources = _sources(opts)
    report = run_stage("plugins", opts, lambda run: _swap_all(opts, sources, run),
                       report=PLUGINS_JSON)
    shown = ", ".join(f"{t} ({g['nodes_after']} nodes)" for t, g in report.graphs.items())
    agreed = ", ".join(f"{t}: {c['identical_users']}/{c['users']} users with identical items"
                       for t, c in report.cpu_agreement.items()) or "no CPU check"
    log.info(f"plugin graphs in {opts.out}: {shown}; {agreed}; {report.seconds:.1f}s")
    return report


def _swap_all(opts: PluginsOptions, sources: list[Path], run: StagedRun) -> PluginsReport:
    """Each source graph swapped (and its CPU rendering checked) into ``run.folder``."""
    from onerec_trt.graphs import check_structure, link_data
    from onerec_trt.plugins.graph_swap import load_for_swap, swap_graph
    from onerec_trt.plugins.match import PatternError

    tmp = run.folder
    graphs, check = {}, {}
    for source in progress_bar(sources, desc="plugin swap", unit="graph", leave=False):
        target = PLUGIN_GRAPHS[source.name]
        keep_bf16 = not source.name.endswith(".cpu.onnx")  # TensorRT graphs read bf16
        try:
            result = swap_graph(load_for_swap(source), keep_bf16_logits=keep_bf16)
        except (ValueError, PatternError) as exc:
            raise user_error(f"cannot swap {source}: {exc}") from None
        check_structure(result.model)
        link_data(source, tmp)  # the weights do not change: the plugin graph reads them there
        onnx.save(result.model, str(tmp / target))
        graphs[target] = {"source": str(source), **result.summary()}
        if not keep_bf16 and opts.check_users:
            check[target] = check_agreement(source, tmp / target, opts.check_users, opts.seed)
    models = {recorded_model(s) for s in sources} - {None}
    run.inputs.update({"model": models.pop() if models else "",
                       **{str(s): _sha(s) for s in sources}})
    return PluginsReport(run.options, graphs, check, run.seconds())


def _sha(path: Path) -> str:
    from onerec_trt.artifacts import sha256_file

    return sha256_file(path)


def check_agreement(standard: Path, plugins: Path, users: int, seed: int = 0) -> dict:
    """Run both CPU graphs on ``users`` histories of real item ids (the trie's leaf items);
    raise if any user's items differ."""
    from onerec_trt.graphs import make_session

    plug = make_session(plugins)
    leaf = next(numpy_helper.to_array(t) for t in
                onnx.load(str(plugins), load_external_data=False).graph.initializer
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

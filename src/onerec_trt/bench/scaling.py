"""How the cost of one request grows with history S, beam B, catalogue size and levels L, for
three beam steps of the one generation loop (``model.generate``): the reference (dense trie
tables), csr (the standard-op graph's step: the trie's CSR arrays) and plugin (the TrieBeamStep
plugin on the packed trie: its Triton kernels on a GPU, its ops in torch on the CPU).

One axis moves at a time from a base point (the benchmarked model's architecture, random
weights, a synthetic catalogue of random unique semantic IDs). Both paths run the same model on
the same histories, alternating per repetition. Besides time, each point records the bytes of
the trie structure each path holds (the dense tables grow as nodes x V per level; where they
exceed ``max_table_mb`` the reference path is not run and says so) and the request's FLOPs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from onerec_trt.bench.stats import paired_ratio
from onerec_trt.errors import user_error
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.generate import Generator, make_step
from onerec_trt.model.synthetic import csr_bytes, dense_table_bytes, random_model, synthetic_ids
from onerec_trt.progress import progress_bar
from onerec_trt.tables import markdown_lines

log = logging.getLogger(__name__)

# axis -> values; catalogue values are (items, codebook size per level)
AXES = {
    "history": [50, 100, 200, 400],
    "beam": [5, 10, 20, 40, 80],
    "catalogue": [(1000, 64), (4000, 256), (16000, 1024), (64000, 4096)],
    "levels": [2, 3, 4],
}
PATHS = ("reference", "csr", "plugin")


@dataclass
class ScalingOptions:
    config: dict  # base model config (ModelConfig.to_dict())
    beam: int = 20
    users: int = 8
    reps: int = 3
    axes: dict = field(default_factory=lambda: dict(AXES))
    device: str = "cpu"
    max_table_mb: float = 512.0
    levels_items: int = 4000  # catalogue of the levels axis (codebook from the base config)
    seed: int = 0
    progress: bool = True

    @classmethod
    def from_bench(cls, opts, facts: dict) -> ScalingOptions:
        chosen = opts.scaling_axes or list(AXES)
        unknown = [a for a in chosen if a not in AXES]
        if unknown:
            raise user_error(f"unknown scaling axis {unknown[0]!r}",
                             f"known axes: {', '.join(AXES)}")
        return cls(config=facts["model"]["config"], beam=facts["request"]["beam"],
                   users=opts.scaling_users, reps=opts.scaling_reps,
                   axes={a: AXES[a] for a in chosen}, device=opts.device, seed=opts.seed,
                   progress=opts.progress)


def _base(opts: ScalingOptions) -> tuple[ModelConfig, int, int]:
    cfg = ModelConfig.from_dict({**opts.config, "dropout": 0.0})
    return cfg, opts.beam, cfg.num_items


def point_config(opts: ScalingOptions, axis: str, value) -> tuple[ModelConfig, int]:
    """(model config, beam) of one point: the base with one axis moved."""
    cfg, beam, items = _base(opts)
    if axis == "history":
        return replace(cfg, max_history=int(value)), beam
    if axis == "beam":
        return cfg, int(value)
    if axis == "catalogue":
        count, vocab = value
        return replace(cfg, num_items=int(count), codebook_sizes=[int(vocab)] * cfg.levels), beam
    if axis == "levels":
        vocab = cfg.codebook_sizes[0]
        count = min(opts.levels_items, vocab ** int(value))
        return replace(cfg, num_items=count, codebook_sizes=[vocab] * int(value)), beam
    raise ValueError(f"unknown axis {axis!r}")


def _flops(cfg: ModelConfig, users: int, beam: int) -> float | None:
    try:
        from onerec_trt.roofline import onerec_ops
    except ImportError:
        return None
    return float(sum(op.flops for op in onerec_ops(cfg, users, beam)))


def _time(fn, reps: int, device: str) -> list[float]:
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        out.append(time.perf_counter() - start)
    return out


def measure_point(opts: ScalingOptions, axis: str, value, plugin_step: str) -> dict:
    """One point: every path on the same model and histories (``plugin_step``: the beam step
    name of the plugin path, ``triton-lang`` on a GPU, ``plugin`` (the ops in torch) else)."""
    cfg, beam = point_config(opts, axis, value)
    ids = synthetic_ids(cfg.num_items, cfg.codebook_sizes, opts.seed)
    model = random_model(cfg, ids, opts.device, seed=opts.seed)
    topk = min(10, beam)
    rng = np.random.default_rng(opts.seed)
    history = torch.as_tensor(rng.integers(1, cfg.num_items + 1, (opts.users, cfg.max_history)),
                              device=opts.device)
    dense_mb = dense_table_bytes(ids.trie) / 2**20
    row = {"axis": axis, "value": list(value) if isinstance(value, tuple) else value,
           "history": cfg.max_history, "beam": beam, "items": cfg.num_items,
           "codebook_sizes": cfg.codebook_sizes, "levels": cfg.levels,
           "trie_nodes": [ids.trie.nodes(t) for t in range(cfg.levels + 1)],
           "dense_tables_mb": dense_mb, "csr_trie_mb": csr_bytes(ids.trie) / 2**20,
           "gflops_per_request": (_flops(cfg, opts.users, beam) or 0.0) / 1e9}
    steps = {"csr": "csr", "plugin": plugin_step}
    if dense_mb > opts.max_table_mb:
        row["reference_skipped"] = (f"dense trie tables need {dense_mb:.0f} MiB "
                                    f"(> {opts.max_table_mb:g} MiB): why the csr and plugin "
                                    "steps exist")
    else:
        steps["reference"] = "dense"
    runs = {p: Generator(model, beam, topk, make_step(s, ids.trie), ids.trie).to(opts.device)
            for p, s in steps.items()}
    runs = {p: (lambda g=g: g(history)) for p, g in runs.items()}
    for fn in runs.values():
        fn()  # warm-up
    samples = {p: [] for p in runs}
    for rep in range(opts.reps):
        for path in (sorted(runs) if rep % 2 == 0 else sorted(runs, reverse=True)):
            samples[path] += _time(runs[path], 1, opts.device)
    for path, seconds in samples.items():
        row[f"{path}_ms"] = float(np.median(seconds)) * 1e3
    if "reference" in samples:  # paired: the median of per-repetition ratios
        row["plugin_over_reference"] = paired_ratio(samples["plugin"],
                                                    samples["reference"])["latency_ratio"]
    return row


def run_scaling(opts: ScalingOptions) -> dict:
    impl = "triton-lang" if opts.device == "cuda" else "plugin"
    points = [(axis, v) for axis, values in opts.axes.items() for v in values]
    rows = []
    for axis, value in progress_bar(points, desc="scaling", unit="point",
                                    disable=not opts.progress, leave=False):
        rows.append(measure_point(opts, axis, value, impl))
    cfg, beam, _ = _base(opts)
    plugin = ("plugins.kernels (the Triton kernels)" if impl == "triton-lang"
              else "plugins.torch_ops (the plugin ops in torch)")
    return {"base": {"config": cfg.to_dict(), "beam": beam, "users": opts.users,
                     "reps": opts.reps},
            "device": opts.device,
            "paths": {"reference": "model.generate's dense step: dense next-node tables "
                                   "[nodes_t, V_t], stable sort",
                      "csr": "model.generate's csr step (what export writes): each beam's "
                             "children from the trie's CSR arrays, B x C_t candidates",
                      "plugin": f"TrieBeamStep on the packed CSR trie, {plugin}"},
            "weights": "random (std 0.02), synthetic catalogue of random unique semantic IDs",
            "points": rows}


def scaling_markdown(scaling: dict) -> list[str]:
    base = scaling["base"]
    lines = ["## Scaling (one axis at a time)", "",
             f"Base: the model's architecture with random weights, beam {base['beam']}, "
             f"{base['users']} users per request, median of {base['reps']} alternating calls "
             "(the ratio: median of the per-repetition ratios), "
             f"on {scaling['device']}. Paths: reference = {scaling['paths']['reference']}; "
             f"csr = {scaling['paths'].get('csr', '-')}; "
             f"plugin = {scaling['paths']['plugin']}.", ""]
    rows = []
    for r in scaling["points"]:
        ref = f"{r['reference_ms']:.1f}" if "reference_ms" in r else "not run"
        csr = f"{r['csr_ms']:.1f}" if "csr_ms" in r else "-"
        ratio = f"{r['plugin_over_reference']:.2f}" if "plugin_over_reference" in r else "-"
        rows.append([r["axis"], str(r["value"]), r["history"], r["beam"], r["items"],
                     r["codebook_sizes"][0], r["levels"], ref, csr, f"{r['plugin_ms']:.1f}",
                     ratio, f"{r['dense_tables_mb']:.1f}", f"{r['csr_trie_mb']:.2f}",
                     f"{r['gflops_per_request']:.2f}"])
    lines += markdown_lines(["axis", "value", "S", "B", "items", "V", "L", "reference ms",
                             "csr ms", "plugin ms", "plugin / reference", "dense tables MiB",
                             "CSR MiB", "GFLOP"], rows, "llrrrrrrrrrrrr")
    skipped = [r for r in scaling["points"] if "reference_skipped" in r]
    lines += [""] + [f"- {r['axis']} {r['value']}: reference not run: {r['reference_skipped']}"
                     for r in skipped] + [""]
    return lines


def plot_scaling(scaling: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from onerec_trt.artifacts import write_atomic

    axes = list(dict.fromkeys(r["axis"] for r in scaling["points"]))
    fig, grid = plt.subplots(1, len(axes), figsize=(4 * len(axes), 3.6), squeeze=False)
    for ax, axis in zip(grid[0], axes, strict=True):
        rows = [r for r in scaling["points"] if r["axis"] == axis]
        xs = [r["items"] if axis == "catalogue" else r["value"] for r in rows]
        for path_name, style in (("reference", "o-"), ("csr", "^-."), ("plugin", "s--")):
            pts = [(x, r[f"{path_name}_ms"]) for x, r in zip(xs, rows, strict=True)
                   if f"{path_name}_ms" in r]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=path_name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel({"catalogue": "items (codebook grows too)", "history": "history S",
                       "beam": "beam B", "levels": "levels L"}[axis])
        ax.set_ylabel("ms per request")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"cost of one request ({scaling['device']}, random weights)", fontsize=9)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)

"""The report's PNG plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onerec_trt.artifacts import write_atomic

COLORS = {"onerec": "tab:blue", "traditional": "tab:red", "lm": "tab:green"}
LABELS = {"onerec": "OneRec-style", "traditional": "traditional (DCN)", "lm": "language model"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110,
                                               bbox_inches="tight"))
    _pyplot().close(fig)


def histograms(profiles: dict, path: Path) -> None:
    """|value| distributions of weights and activations, all models on one log10 axis."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, kind in zip(axes, ("weight_values", "activation_values"), strict=True):
        samples = {k: np.abs(getattr(p, kind)) for k, p in profiles.items()
                   if getattr(p, kind) is not None}
        nonzero = [v[v > 0] for v in samples.values() if (v > 0).any()]
        # from the 0.1th percentile: below it a few values make a comb of empty bins
        lo = min(float(np.log10(np.percentile(v, 0.1))) for v in nonzero)
        hi = max(float(np.log10(v.max())) for v in nonzero)
        bins = np.logspace(lo, hi + 0.05, 80)
        for key, values in samples.items():
            ax.hist(values[values > 0], bins=bins, histtype="step", density=True, linewidth=1.6,
                    color=COLORS.get(key), label=LABELS.get(key, key))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("|value| (log scale)")
        ax.set_title("GEMM weights" if kind == "weight_values" else "GEMM inputs (activations)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("density")
    axes[1].legend()
    _save(fig, path)


def sqnr_bars(profiles: dict, threshold_db: float, path: Path) -> None:
    """Per-layer FP8 SQNR (per-tensor weight, per-tensor input, GEMM output), one row a model."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(profiles), 1, figsize=(13, 5.2 * len(profiles)), squeeze=False,
                             constrained_layout=True)
    series = (("weight", "weight (per-tensor)", "tab:blue"),
              ("activation", "input (per-tensor)", "tab:orange"),
              ("gemm", "GEMM output", "tab:gray"))
    for ax, (key, profile) in zip(axes[:, 0], profiles.items(), strict=True):
        names = list(profile.layers)
        x = np.arange(len(names))
        for k, (field, label, color) in enumerate(series):
            vals = [_sqnr(profile.layers[n], field) for n in names]
            ax.bar(x + (k - 1) * 0.27, vals, 0.27, label=label, color=color)
        ax.axhline(threshold_db, color="red", linestyle="--", linewidth=1,
                   label=f"exclusion threshold {threshold_db:g} dB")
        ax.set_xticks(x, names, rotation=90, fontsize=6)
        ax.set_ylabel("FP8 E4M3 SQNR (dB)")
        ax.set_title(LABELS.get(key, key))
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=4)
    _save(fig, path)


def _sqnr(layer: dict, field: str) -> float:
    if field == "gemm":
        return layer.get("gemm_sqnr_db", np.nan)
    stats = layer.get(field)
    return stats["fp8"]["per_tensor"]["sqnr_db"] if stats else np.nan


def roofline_chart(gpus: dict, points: dict[str, list[dict]], sweeps: dict[str, dict],
                   gpu_name: str, path: Path) -> None:
    """Left: roofs of every GPU with the ops of each model at its serving shape.
    Right: predicted FP8 speed-up against N*B on ``gpu_name``."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    x = np.logspace(-1, 5, 200)
    for k, (name, gpu) in enumerate(gpus.items()):
        color = f"C{k}"
        bw = gpu["memory_tbs"]
        left.plot(x, np.minimum(x * bw, gpu["bf16_tflops"]), color=color, label=f"{name} BF16")
        if gpu.get("fp8_tflops"):
            left.plot(x, np.minimum(x * bw, gpu["fp8_tflops"]), color=color, linestyle="--",
                      label=f"{name} FP8")
    markers = ("o", "s", "^", "D")
    for k, (label, ops) in enumerate(points.items()):
        xs = [op["intensity_bf16"] for op in ops if op["flops"] > 0]
        ys = [min(op["intensity_bf16"] * gpus[gpu_name]["memory_tbs"],
                  gpus[gpu_name]["bf16_tflops"]) for op in ops if op["flops"] > 0]
        left.scatter(xs, ys, s=12, marker=markers[k % 4], alpha=0.6, label=f"{label} ops")
    left.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOP/byte, BF16)",
             ylabel="attainable TFLOPS", title=f"roofline (ops placed on {gpu_name}'s BF16 roof)")
    left.legend(fontsize=6, ncol=2)
    left.grid(alpha=0.3, which="both")
    for label, sweep in sweeps.items():
        pts = [p for p in sweep["points"] if p["predicted_speedup"]]
        right.plot([p["rows"] for p in pts], [p["predicted_speedup"] for p in pts], marker=".",
                   label=label)
    right.set(xscale="log", xlabel="N*B (users x beams per request)",
              ylabel="predicted FP8 speed-up", title=f"FP8 speed-up on {gpu_name} (roofline)")
    right.axhline(1.0, color="black", linewidth=0.8)
    right.legend(fontsize=7)
    right.grid(alpha=0.3, which="both")
    _save(fig, path)

"""Does analyze predict what matters? Each GEMM layer's FP8 SQNR (``onerec-trt analyze``: the
layer's output with both operands in per-tensor FP8) against the overlap@10 lost when only
that layer is FP8 (``onerec-trt quantize --search``: its sensitivity step, validation users).

    python scripts/sqnr_vs_overlap.py --analysis runs/x/analysis --search runs/x/fp8 \
        --out runs/x/sqnr-vs-overlap

Writes ``sqnr_vs_overlap.png`` (scatter, one point a layer), ``sqnr_vs_overlap.json``
(the pairs, Spearman and Pearson correlations) and prints the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr

from onerec_trt.analysis import AnalysisReport
from onerec_trt.artifacts import staged_folder, write_json, write_manifest
from onerec_trt.errors import user_error
from onerec_trt.quantize import QuantizeReport
from onerec_trt.reports import read_stage
from onerec_trt.tables import format_table


def pairs(analysis: Path, search: Path) -> list[tuple[str, float, float]]:
    """(layer, GEMM output SQNR dB, overlap@10 lost alone in FP8) for every layer in both."""
    report = read_stage(analysis, AnalysisReport, flag="--analysis")
    layers = report.models.get("onerec", {}).get("layers")
    lost = (read_stage(search, QuantizeReport, flag="--search").search or {}).get("sensitivity")
    if not isinstance(layers, dict):
        raise user_error(f"{analysis} has no per-layer FP8 profile", "run 'onerec-trt analyze'")
    if not lost:
        raise user_error(f"{search} was not made by 'onerec-trt quantize --search'",
                         "rerun quantize with --search")
    out = [(name, float(layers[name]["gemm_sqnr_db"]), float(loss))
           for name, loss in lost.items() if "gemm_sqnr_db" in layers.get(name, {})]
    if len(out) < 3:
        raise user_error("fewer than 3 layers appear in both reports",
                         "analyze and search the same model")
    return out


def plot(rows: list[tuple[str, float, float]], rho: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    sqnr = [r[1] for r in rows]
    lost = [100 * r[2] for r in rows]
    ax.scatter(sqnr, lost)
    for name, x, y in rows:
        ax.annotate(name, (x, 100 * y), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel("FP8 SQNR of the layer's GEMM output (dB, onerec-trt analyze)")
    ax.set_ylabel("overlap@10 lost, only this layer in FP8 (points)")
    ax.set_title(f"Does per-layer SQNR predict top-10 damage? Spearman rho = {rho:+.2f}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--analysis", required=True, type=Path, help="onerec-trt analyze's --out")
    p.add_argument("--search", required=True, type=Path,
                   help="the --out of 'onerec-trt quantize --search'")
    p.add_argument("--out", required=True, type=Path, help="folder for the plot and JSON")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    args = p.parse_args(argv)
    try:
        rows = sorted(pairs(args.analysis, args.search), key=lambda r: r[1])
    except Exception as exc:  # a user error: one line, no traceback
        if type(exc).__name__ != "UserError":
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sqnr, lost = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    rho = float(spearmanr(sqnr, lost).statistic)
    r = float(pearsonr(sqnr, lost).statistic)
    with staged_folder(args.out, force=args.force) as tmp:
        plot(rows, rho, tmp / "sqnr_vs_overlap.png")
        write_json(tmp / "sqnr_vs_overlap.json", {
            "spearman_rho": rho, "pearson_r": r, "layers": len(rows),
            "pairs": [{"layer": n, "gemm_sqnr_db": s, "overlap_lost": o} for n, s, o in rows]})
        write_manifest(tmp, "sqnr_vs_overlap", {k: str(v) for k, v in vars(args).items()})
    print(format_table(["layer", "GEMM SQNR dB", "overlap@10 lost"],
                       [[n, round(s, 2), round(o, 4)] for n, s, o in rows]))
    print(f"\nSpearman rho {rho:+.3f}, Pearson r {r:+.3f} over {len(rows)} layers "
          "(a useful predictor would be clearly negative: lower SQNR, more overlap lost)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

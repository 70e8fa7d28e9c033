"""``quantize --search``'s Pareto table and plot (``pareto.md``, ``pareto.png``): every candidate
the search measured, its FP8 share of the FLOPs, overlap@10 against bf16 (and its one-sided 95%
lower bound), Recall@10 / NDCG@10 change against bf16 and its predicted speed-up, with the
chosen policy and the Pareto-optimal candidates (no other candidate has at least its FP8 share
and at least its overlap@10, one of them larger) marked.
"""

from __future__ import annotations

from pathlib import Path

from onerec_trt.artifacts import write_atomic, write_text
from onerec_trt.quantize.search import SearchResult
from onerec_trt.quantize.speedup import GPUS, LABEL
from onerec_trt.tables import markdown_lines

PARETO_MD, PARETO_PNG = "pareto.md", "pareto.png"


def pareto_rows(result: SearchResult, calibration_trials: list[dict] = ()) -> list[dict]:
    """One row per candidate: the calibration trials (every GEMM in FP8 but the forced ones,
    one per algorithm; no lower bound was computed for them), then the search's trials."""
    everything = next((t for t in result.trials if t.step == "all"), None)
    rows = [{"step": "calibration", "candidate": f"{c['calibration']}, every GEMM in FP8",
             "fp8_flop_share": everything.fp8_flop_share if everything else None,
             "overlap_at_10": c["overlap_at_10"], "overlap_lower_95": None, "quality_change": {},
             "predicted_speedup": everything.predicted_speedup if everything else {}}
            for c in calibration_trials]
    rows += [{"step": t.step, "candidate": t.action, "fp8_flop_share": t.fp8_flop_share,
              "overlap_at_10": t.overlap_at_10, "overlap_lower_95": t.overlap_lower_95,
              "quality_change": t.quality_change, "predicted_speedup": t.predicted_speedup}
             for t in result.trials]
    accepted = [i for i, t in enumerate(result.trials) if t.accepted]
    chosen = len(calibration_trials) + accepted[-1] if accepted else None
    for i, row in enumerate(rows):
        row["chosen"] = i == chosen
        row["pareto"] = row["fp8_flop_share"] is not None and not any(
            _dominates(other, row) for other in rows if other is not row)
    return rows


def _dominates(a: dict, b: dict) -> bool:
    if a["fp8_flop_share"] is None:
        return False
    ge = a["fp8_flop_share"] >= b["fp8_flop_share"] and a["overlap_at_10"] >= b["overlap_at_10"]
    gt = a["fp8_flop_share"] > b["fp8_flop_share"] or a["overlap_at_10"] > b["overlap_at_10"]
    return ge and gt


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:+.2%}"


def pareto_markdown(rows: list[dict], chosen: dict, speedup_basis: str) -> str:
    """pareto.md: the table (tables.markdown_lines) and what each column is."""
    header = ["#", "step", "candidate", "FP8 FLOP share", "overlap@10", "lower 95%",
              "Recall@10 change", "NDCG@10 change", *(f"speed-up {g}" for g in GPUS),
              "Pareto", "chosen"]
    body = [[i, r["step"], r["candidate"], "" if r["fp8_flop_share"] is None
             else f"{r['fp8_flop_share']:.1%}", f"{r['overlap_at_10']:.4f}",
             "" if r["overlap_lower_95"] is None else f"{r['overlap_lower_95']:.4f}",
             _pct(r["quality_change"].get("recall@10")), _pct(r["quality_change"].get("ndcg@10")),
             *(f"{r['predicted_speedup'][g]:.2f}x" if g in r["predicted_speedup"] else ""
               for g in GPUS), "yes" if r["pareto"] else "", "**chosen**" if r["chosen"] else ""]
            for i, r in enumerate(rows)]
    return "\n".join([
        "# quantize --search: the fidelity/speed frontier",
        "",
        f"Every candidate the search measured on {chosen['users']:,} {chosen['split']} users "
        f"({chosen['dataset']}), target overlap@10 lower bound >= {chosen['target_overlap']}.",
        "",
        *markdown_lines(header, body, "rllrrrrr" + "r" * len(GPUS)),
        "",
        "- overlap@10, lower 95% (one-sided), Recall@10 / NDCG@10 change: torch fake "
        "quantization (ModelOpt's calibrated FP8 quantizers) against the same generation loop "
        "in bf16, on the same validation users; the changes are relative changes of the mean "
        "(FP8 / bf16 - 1), without a confidence interval (verify's noninferiority test on test "
        "users gives one).",
        f"- FP8 FLOP share: of {chosen['flop_basis']}.",
        f"- speed-up over bf16: {LABEL}; {speedup_basis}.",
        "- Pareto: no other candidate has at least its FP8 share and at least its overlap@10, "
        "one of them larger. chosen: the policy the search wrote (fp8_policy.json).",
        "",
    ])


def pareto_plot(rows: list[dict], target: float, path: Path) -> None:
    """FP8 FLOP share against overlap@10 (bars down to the lower bound), Pareto front joined,
    the chosen policy starred, each Pareto point labelled with its predicted H200 speed-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    shown = [r for r in rows if r["fp8_flop_share"] is not None]
    for r in shown:
        x, y = r["fp8_flop_share"] * 100, r["overlap_at_10"]
        low = y - r["overlap_lower_95"] if r["overlap_lower_95"] is not None else 0.0
        ax.errorbar([x], [y], yerr=[[low], [0.0]], fmt="o", ms=4, alpha=0.5,
                    color="tab:red" if r["pareto"] else "tab:gray", capsize=2)
    front = sorted((r for r in shown if r["pareto"]), key=lambda r: r["fp8_flop_share"])
    ax.plot([r["fp8_flop_share"] * 100 for r in front], [r["overlap_at_10"] for r in front],
            color="tab:red", linewidth=1, label="Pareto front")
    for r in front:
        gpu = GPUS[-1]
        if gpu in r["predicted_speedup"]:
            ax.annotate(f"{r['predicted_speedup'][gpu]:.2f}x", (r["fp8_flop_share"] * 100,
                        r["overlap_at_10"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    for r in shown:
        if r["chosen"]:
            ax.scatter([r["fp8_flop_share"] * 100], [r["overlap_at_10"]], marker="*", s=160,
                       color="tab:blue", zorder=3, label="chosen")
    ax.axhline(target, color="black", linewidth=0.8, linestyle="--", label=f"target {target}")
    ax.set(xlabel="FP8 share of the FLOPs (%)", ylabel="overlap@10 against bf16 (torch FP8 sim)",
           title=f"FP8 candidates (labels: speed-up on {GPUS[-1]}, predicted, not measured)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)


def write_pareto(folder: Path, result: SearchResult, chosen: dict, speedup_basis: str) -> dict:
    """Write pareto.md and pareto.png into ``folder``; the report's ``pareto`` record."""
    rows = pareto_rows(result, chosen.get("calibration_trials", []))
    write_text(folder / PARETO_MD, pareto_markdown(rows, chosen, speedup_basis))
    pareto_plot(rows, chosen["target_overlap"], folder / PARETO_PNG)
    return {"table": PARETO_MD, "plot": PARETO_PNG, "rows": rows,
            "pareto_axes": "FP8 FLOP share x overlap@10"}

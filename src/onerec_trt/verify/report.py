"""verify.md: the summary a person reads."""

from __future__ import annotations

from onerec_trt.tables import format_table
from onerec_trt.verify import VerifyReport


def format_markdown(report: VerifyReport, short: bool = False) -> str:
    m = report.metrics
    verdict = "PASS" if report.passed else "FAIL"
    be = report.backends
    lines = [
        f"# verify: {verdict}",
        "",
        f"reference: {be['reference']['spec']} ({be['reference']['backend']})",
        f"candidate: {be['candidate']['spec']} ({be['candidate']['backend']})",
        f"{report.users:,} held-out users of {report.dataset} ({report.split} split)"
        if report.measured_metrics else f"{report.users:,} requests from {report.dataset}",
        "",
        format_table(["gate", "value", "threshold", "result"],
                     [[name, g["value"], g["threshold"], "pass" if g["pass"] else "FAIL"]
                      for name, g in report.gates.items()]),
        *(f"{name}: {g['reason']}" for name, g in report.gates.items() if g.get("reason")),
        "",
    ]
    rows = []
    for name in ("recall@10", "ndcg@10", "recall@5", "ndcg@5"):
        if name not in m:
            continue
        d = m[name]
        lo, hi = d["relative_diff_ci95"]
        rows.append([name, d["reference"], d["candidate"], f"{d['relative_diff']:+.2%}",
                     f"[{lo:+.2%}, {hi:+.2%}]", d["users_changed"]])
    if rows:
        lines.append(format_table(["metric", "reference", "candidate", "relative", "95% CI",
                                   "users changed"], rows))
    else:
        lines.append("Recall/NDCG were not measured: requests from --histories have no "
                     "held-out targets. Agreement only.")
    if short:
        return "\n".join(lines)
    lines += ["", format_table(["agreement", "@5", "@10"], [
        [k, m[f"{k}@5"], m[f"{k}@10"]] for k in ("overlap", "jaccard", "exact_match",
                                               "rank_correlation")]), "",
        f"scores |reference - candidate|: median {m['scores_abs_error']['median']:.4g}, "
        f"p99 {m['scores_abs_error']['p99']:.4g}, max {m['scores_abs_error']['max']:.4g}",
        f"time: {report.seconds['inference']:.1f} s inference, "
        f"{report.seconds['total']:.1f} s total",
        "",
        "Tensor-level comparison by hand (Polygraphy reruns the reference on the saved inputs "
        "and compares it with both saved runs; `scores` is the tensor check, `items`/`codes` "
        "are judged above by agreement, not elementwise):",
        "",
        f"    polygraphy run {report.options['reference']} --onnxrt "
        f"--load-inputs {report.options['out']}/inputs.json "
        f"--load-outputs {report.options['out']}/outputs.json "
        f"--atol scores:{report.options['scores_atol']} "
        f"--rtol scores:{report.options['scores_rtol']} "
        f"--check-error-stat scores:quantile "
        f"--error-quantile scores:{report.options['scores_quantile']}",
        ""]
    return "\n".join(lines)

"""verify.md: the summary a person reads."""

from __future__ import annotations

from onerec_trt.tables import format_table
from onerec_trt.verify import VerifyReport


def _decision(gate: dict) -> str:
    decision = gate.get("decision", "pass" if gate["pass"] else "fail")
    if decision == "inconclusive" and gate.get("users_needed"):
        return f"inconclusive: about {gate['users_needed']:,} users needed"
    return "FAIL" if decision == "fail" else decision


def _value(gate: dict):
    if "ci" in gate:  # a relative change and its CI
        lo, hi = gate["ci"]
        return f"{gate['value']:+.2%} [{lo:+.2%}, {hi:+.2%}]"
    return gate["value"]


def format_markdown(report: VerifyReport, short: bool = False) -> str:
    m = report.metrics
    be = report.backends
    lines = [
        f"# verify: {report.verdict}",
        "",
        f"reference: {be['reference']['spec']} ({be['reference']['backend']})",
        f"candidate: {be['candidate']['spec']} ({be['candidate']['backend']})",
        f"{report.users:,} held-out users of {report.dataset} ({report.split} split)"
        if report.measured_metrics else f"{report.users:,} requests from {report.dataset}",
        "",
        format_table(["gate", "value", "threshold", "decision"],
                     [[name, _value(g), g["threshold"], _decision(g)]
                      for name, g in report.gates.items()]),
        # the reasons worth reading: the statistical gates' and any gate that did not pass
        *(f"{name}: {g['reason']}" for name, g in report.gates.items()
          if g.get("reason") and ("ci" in g or g.get("decision", "fail") != "pass")),
        "",
    ]
    rows = []
    for name in ("recall@10", "ndcg@10", "recall@5", "ndcg@5"):
        if name not in m:
            continue
        d = m[name]
        lo, hi = d["relative_diff_ci"]
        level = f"{d['confidence']:.0%} CI"
        rows.append([name, d["reference"], d["candidate"], f"{d['relative_diff']:+.2%}",
                     f"[{lo:+.2%}, {hi:+.2%}]", d["users_changed"]])
    if rows:
        lines.append(format_table(["metric", "reference", "candidate", "relative", level,
                                   "users changed"], rows))
    else:
        lines.append("Recall/NDCG were not measured: requests from --histories have no "
                     "held-out targets. Agreement only.")
    if short:
        return "\n".join(lines)
    if rows:
        lines += ["", "The Recall@10/NDCG@10 gates are non-inferiority tests (docs/verify.md): "
                      "pass when the CI's lower bound is within the margin, fail when the whole "
                      "CI lies below it, otherwise inconclusive (not a failure: the sample is "
                      "too small to decide; overlap@10 is the primary gate)."]
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

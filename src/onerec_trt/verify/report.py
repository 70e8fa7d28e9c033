"""verify.md: the summary a person reads (and, its first part, what the CLI prints)."""

from __future__ import annotations

from onerec_trt.layout import QUANTIZE_REPORT
from onerec_trt.tables import table_lines
from onerec_trt.verify import VerifyReport
from onerec_trt.verify.script import SCRIPT


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


def _margin(report: VerifyReport) -> str:
    """"the 1% margin" where the Recall and NDCG margins agree, else "their margins"."""
    gates = report.options.get("gates") or {}
    margins = {gates.get("max_recall_drop"), gates.get("max_ndcg_drop")}
    return f"the {margins.pop():.0%} margin" if len(margins) == 1 and None not in margins \
        else "their margins"


def verdict_note(report: VerifyReport) -> str | None:
    """Under a verdict with inconclusive gates: what inconclusive means and what decided the
    run, in two plain sentences (None when no gate is inconclusive)."""
    if not report.inconclusive:
        return None
    names = " and ".join(name.removesuffix("_relative_change") for name in report.inconclusive)
    needed = max(report.gates[name].get("users_needed") or 0 for name in report.inconclusive)
    about = f" (about {needed:,} users would decide)" if needed else ""
    first = (f"Inconclusive means the {report.users:,} users measured are too few to show "
             f"whether {names} lost less than {_margin(report)} or more{about}; it is not a "
             "failure.")
    failed = [name for name, g in report.gates.items() if g.get("decision") == "fail"]
    if failed:
        return f"{first} The run failed on {', '.join(failed)}."
    overlap = report.gates["overlap@10"]
    return (f"{first} The pass was decided by the overlap gate: overlap@10 "
            f"{overlap['value']:.4f} {overlap['threshold']} (with finite scores and the scores "
            "tensor within its tolerances).")


def _metric_rows(m: dict) -> tuple[list[list], str]:
    rows, level = [], ""
    for name in ("recall@10", "ndcg@10", "recall@5", "ndcg@5"):
        if name not in m:
            continue
        d = m[name]
        lo, hi = d["relative_diff_ci"]
        level = f"{d['confidence']:.0%} CI"
        rows.append([name, d["reference"], d["candidate"], f"{d['relative_diff']:+.2%}",
                     f"[{lo:+.2%}, {hi:+.2%}]", d["users_changed"]])
    return rows, level


def _by_hand(report: VerifyReport) -> list[str]:
    """The Polygraphy section: the script that passes with the gates, and the CLI command."""
    o = report.options
    return [
        "## By hand with Polygraphy",
        "",
        f"`{SCRIPT}` (beside this file) redoes the scores-tensor, overlap@10 and finite-score "
        "gates with Polygraphy's API on the saved runs and exits 0 when they pass "
        "(`--rerun`: rerun the ONNX graphs on `inputs.json` first):",
        "",
        "```bash",
        f"python {o['out']}/{SCRIPT} [--rerun]",
        "```",
        "",
        *(_cli_command(o) if _plain_onnx(report.backends["reference"]) else [
            "The reference is not a plain ONNX graph, so Polygraphy's CLI cannot rerun it with "
            "ONNX Runtime alone: use the script."]),
    ]


def _plain_onnx(backend: dict) -> bool:
    """A graph Polygraphy's ``--onnxrt`` loads as is: an ONNX Runtime backend's, without the
    plugins stage's custom ops (``backend``: verify.json's description of it)."""
    return backend.get("kind") == "ort" and not backend["spec"].endswith(".plugins.cpu.onnx")


def _cli_command(o: dict) -> list[str]:
    return [
        "Polygraphy's CLI, rerunning the reference on the saved inputs, with the script as its "
        "comparison function (`scores` with the tolerances above; `items`/`codes` are judged "
        "by overlap, not elementwise: Polygraphy's default comparison ends FAILED for them "
        "wherever FP8 reorders two items):",
        "",
        "```bash",
        f"polygraphy run {o['reference']} --onnxrt --graph-optimization-level ORT_ENABLE_BASIC "
        f"--load-inputs {o['out']}/inputs.json --load-outputs {o['out']}/outputs.json "
        f"--compare-func-script {o['out']}/{SCRIPT}",
        "```",
        "",
        "`--graph-optimization-level ORT_ENABLE_BASIC` is needed for an FP8 graph: ONNX "
        "Runtime's default level (ALL) fuses its FP8 QuantizeLinear/DequantizeLinear pairs "
        "into nodes with no FP8 CPU kernel (\"Failed to find kernel for Reshape(19)\"). "
        "onerec-trt's own sessions turn that fusion off.",
    ]


def _speedup_lines(record: dict) -> list[str]:
    """The price of the candidate's fidelity: its policy's predicted speed-up over bf16."""
    if not record:
        return []
    share = record.get("fp8_flop_share")
    return ["", "predicted speed-up over bf16 of the candidate's FP8 policy"
            + (f" ({share:.0%} of the FLOPs in FP8)" if share is not None else "") + ": "
            + ", ".join(f"{v:.2f}x on {g}" for g, v in record["over_bf16"].items())
            + f" ({record.get('label', 'predicted (roofline), not measured')}; "
              f"{QUANTIZE_REPORT} of its quantize run)"]


def _cut_lines(cut: dict) -> list[str]:
    """Score error at the top-K cut against the K/K+1 gap (verify/cut.py)."""
    if not cut:
        return []
    k = cut["k"]
    if not cut["computed"]:
        return [f"score error at the top-{k} cut against the {k}/{k + 1} gap: not computed "
                f"({cut['why']})  "]
    return [f"score error at the top-{k} cut: median {cut['error_median']:.4g} against a median "
            f"{k}/{k + 1} gap of {cut['gap_median']:.4g} (reference); the error exceeds the gap "
            f"for {cut['error_exceeds_gap_share']:.1%} of {cut['users']:,} users  "]


def format_markdown(report: VerifyReport, short: bool = False) -> str:
    m = report.metrics
    be = report.backends
    note = verdict_note(report)
    lines = [
        f"# verify: {report.verdict}",
        *(["", note] if note else []),
        "",
        f"reference: {be['reference']['spec']} ({be['reference']['backend']})  ",
        f"candidate: {be['candidate']['spec']} ({be['candidate']['backend']})  ",
        f"{report.users:,} held-out users of {report.dataset} ({report.split} split)"
        if report.measured_metrics else f"{report.users:,} requests from {report.dataset}",
        *table_lines(["gate", "value", "threshold", "decision"],
                     [[name, _value(g), g["threshold"], _decision(g)]
                      for name, g in report.gates.items()]),
        # the reasons worth reading: the statistical gates' and any gate that did not pass
        *(f"- {name}: {g['reason']}" for name, g in report.gates.items()
          if g.get("reason") and ("ci" in g or g.get("decision", "fail") != "pass")),
    ]
    lines += _speedup_lines(report.predicted_speedup)
    rows, level = _metric_rows(m)
    if rows:
        lines += table_lines(["metric", "reference", "candidate", "relative", level,
                              "users changed"], rows)
    else:
        lines += ["", "Recall/NDCG were not measured: requests from --histories have no "
                      "held-out targets. Agreement only."]
    if short:
        return _join(lines)
    if rows:
        lines += ["", "The Recall@10/NDCG@10 gates are non-inferiority tests (docs/verify.md): "
                      "pass when the CI's lower bound is within the margin, fail when the whole "
                      "CI lies below it, otherwise inconclusive (not a failure: the sample is "
                      "too small to decide; overlap@10 is the primary gate)."]
    lines += [*table_lines(["agreement", "@5", "@10"], [
        [k, m[f"{k}@5"], m[f"{k}@10"]] for k in ("overlap", "jaccard", "exact_match",
                                               "rank_correlation")]),
        f"scores \\|reference - candidate\\|: median {m['scores_abs_error']['median']:.4g}, "
        f"p99 {m['scores_abs_error']['p99']:.4g}, max {m['scores_abs_error']['max']:.4g}  ",
        *_cut_lines(report.score_cut),
        f"time: {report.seconds['inference']:.1f} s inference, "
        f"{report.seconds['total']:.1f} s total",
        "",
        *_by_hand(report)]
    return _join(lines) + "\n"


def _join(lines: list[str]) -> str:
    """The lines with runs of blank lines (where two tables' padding meet) made one."""
    out: list[str] = []
    for line in lines:
        if line == "" and (not out or out[-1] == ""):
            continue
        out.append(line)
    return "\n".join(out).strip("\n")

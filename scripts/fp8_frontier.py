"""The FP8 frontier of several models or levers side by side: per row, ``quantize --search``
on validation users (with the row's own quantize options: ``--weight-scales per-channel``,
``--qad MINUTES``, ...), then, with ``--test-users``, ``verify`` of the chosen graph on test
users against the bf16 reference of the model the row started from (a QAD student's
teacher). Writes ``frontier.json``, ``frontier.md`` and ``frontier.png`` (every row's Pareto
front: FP8 share of the FLOPs against overlap@10) into ``--out``.

    python scripts/fp8_frontier.py --work /tmp/w --out width-study --search-users 500 \\
        --row "d64=/models/w64" --row "d128=/models/w128" --row "d256=/models/w256"
    python scripts/fp8_frontier.py --work /tmp/l --out levers-ml1m --test-users 6040 \\
        --row "PTQ=default" --row "per-channel=default --weight-scales per-channel" \\
        --row "QAD 5 min=default --qad 5" --row "fp8-aware training=/models/ml1m-fp8aware"

A row is ``NAME=MODEL`` and then any ``onerec-trt quantize`` options. Every overlap and
Recall/NDCG change of the search is torch fake quantization on validation users; the test
columns are ONNX Runtime's CPU simulation of the FP8 graph against the bf16 rendering; the
speed-ups are the roofline's predictions (quantize/speedup.py), never measurements.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from onerec_trt.artifacts import staged_folder, write_json, write_manifest, write_text
from onerec_trt.tables import format_table

H200 = "H200"


def quantize_options(model: str, extra: list[str], onnx: Path, out: Path, a):
    """QuantizeOptions from the row's quantize options, as the CLI reads them."""
    from onerec_trt.commands import options_from
    from onerec_trt.commands.quantize import add_arguments
    from onerec_trt.quantize import QuantizeOptions

    p = argparse.ArgumentParser(prog="quantize options of a row")
    add_arguments(p)
    args = p.parse_args([*extra, "--model", model, "--onnx", str(onnx), "--out", str(out),
                         "--search", "--search-users", str(a.search_users),
                         "--target-overlap", str(a.target), "--force"])
    return options_from(args, QuantizeOptions, default_exclusions=not args.quantize_all)


def model_facts(model: str) -> dict:
    """Width, parameters and the training record's budget of a model folder."""
    import torch

    from onerec_trt.model.checkpoint import load_model

    bundle = load_model(model, torch.float32)
    cfg = bundle.config
    backbone = getattr(getattr(bundle.model, "backbone", None), "config", None)  # imported
    width = getattr(cfg, "d_model", None) or getattr(backbone, "hidden_size", None)
    training = bundle.training or {}
    epochs = training.get("epochs") or []
    last = epochs[-1] if epochs and isinstance(epochs[-1], dict) else {}
    return {"width": width, "parameters": sum(p.numel() for p in bundle.model.parameters()),
            "steps": last.get("steps"), "fp8_aware": bool(training.get("fp8_aware"))}


def searched(model: str, extra: list[str], onnx: Path, fp8: Path, a):
    """The row's quantize report: run now, or (``--reuse``) read from an earlier run of the
    same row with the same search settings."""
    from onerec_trt.quantize import QuantizeReport, quantize
    from onerec_trt.reports import read_stage

    key = {"model": model, "options": extra, "search_users": a.search_users,
           "target": a.target}
    done = fp8.parent / "row.json"
    if a.reuse and done.is_file() and json.loads(done.read_text()) == key:
        return read_stage(fp8, QuantizeReport), True
    report = quantize(quantize_options(model, extra, onnx, fp8, a))
    write_json(done, key)
    return report, False


def trial(rows: list[dict], step: str) -> dict | None:
    return next((r for r in rows if r["step"] == step), None)


def one_row(name: str, spec: str, work: Path, a) -> dict:
    from onerec_trt.export import ExportOptions, export

    model, *extra = shlex.split(spec)
    t0 = time.perf_counter()
    onnx = work / "onnx" / Path(model).name
    if not (onnx / "export_report.json").is_file():
        export(ExportOptions(model=model, out=str(onnx), force=True))
    fp8 = work / name.replace(" ", "_") / "fp8"
    q, reused = searched(model, extra, onnx, fp8, a)
    chosen, rows = q.policy["chosen"], q.pareto["rows"]
    every, but_heads = trial(rows, "all"), trial(rows, "all but heads")
    row = {"name": name, "model": model, "options": extra, **model_facts(model),
           "search_users": chosen["users"], "reference": chosen.get("reference", "bf16"),
           "reference_metrics": chosen.get("reference_metrics", {}),
           "all_fp8": but_heads, "every_gemm": every,
           "fp8_flop_share": chosen["fp8_flop_share"], "overlap_at_10": chosen["overlap_at_10"],
           "overlap_lower_95": chosen["overlap_lower_95"],
           "quality_change": next((r.get("quality_change", {}) for r in rows if r["chosen"]),
                                  {}),
           "predicted_speedup": chosen["predicted_speedup"],
           "flop_basis": q.flop_basis, "pareto": [r for r in rows if r["pareto"]],
           "qad": {k: q.qad.get(k) for k in ("minutes", "steps_run", "seconds", "held_out_kl")}
           if q.qad else {}}
    if a.test_users:
        row["test"] = verify_on_test(model, onnx, fp8, q, a.test_users,
                                     work / name.replace(" ", "_") / "verify", reused)
    row["minutes"] = (time.perf_counter() - t0) / 60
    return row


def verify_on_test(model: str, onnx: Path, fp8: Path, q, users: int, out: Path,
                   reuse: bool) -> dict:
    """verify of the chosen FP8 graph against the row's model's bf16 graph, on test users
    (``reuse``: the search was reused, so is a finished verify of it with as many users)."""
    from onerec_trt.backends import OrtBackend
    from onerec_trt.layout import CPU_GRAPH, FP8_CPU_GRAPH
    from onerec_trt.model.checkpoint import model_hash
    from onerec_trt.reports import read_stage
    from onerec_trt.verify import VerifyOptions, VerifyReport, verify

    asked = out.parent / "verify_users.json"
    if reuse and asked.is_file() and json.loads(asked.read_text()) == users:
        v = read_stage(out, VerifyReport)
    else:
        candidate_sha = q.qad.get("student_sha256") if q.qad else model_hash(model)
        v = verify(VerifyOptions(model=model, split="test", users=users, out=str(out),
                                 force=True),
                   OrtBackend(onnx / CPU_GRAPH, model_sha=model_hash(model)),
                   OrtBackend(fp8 / FP8_CPU_GRAPH, model_sha=candidate_sha))
        write_json(asked, users)
    m = v.metrics
    return {"users": v.users, "overlap@10": m["overlap@10"], "passed": v.passed,
            **{k: {f: m[k][f] for f in ("reference", "candidate", "relative_diff",
                                         "relative_diff_ci")} for k in ("recall@10", "ndcg@10")}}


def _pct(value) -> str:
    return "" if value is None else f"{value:+.1%}"


def _ci(d: dict) -> str:
    lo, hi = d["relative_diff_ci"]
    return f"{d['relative_diff']:+.2%} [{lo:+.2%}, {hi:+.2%}]"


def table(rows: list[dict]) -> str:
    head = ["row", "width", "parameters", "steps", "bf16 Recall@10 / NDCG@10 (valid)",
            "all-FP8 overlap@10", "searched FP8 share", "overlap@10 (lower 95%)",
            "Recall@10 / NDCG@10 change", "predicted speed-up H200: searched / all-FP8"]
    body = []
    for r in rows:
        ref, q, but = r["reference_metrics"], r["quality_change"], r["all_fp8"] or {}
        body.append([
            r["name"], r["width"] or "", f"{r['parameters']:,}", r["steps"] or "",
            f"{ref.get('recall@10', 0):.4f} / {ref.get('ndcg@10', 0):.4f}" if ref else "",
            f"{but['overlap_at_10']:.3f}" if but else "",
            f"{r['fp8_flop_share']:.1%}",
            f"{r['overlap_at_10']:.3f} ({r['overlap_lower_95']:.3f})",
            f"{_pct(q.get('recall@10'))} / {_pct(q.get('ndcg@10'))}",
            f"{r['predicted_speedup'].get(H200, 0):.2f}x / "
            f"{(but.get('predicted_speedup') or {}).get(H200, 0):.2f}x"])
    lines = [format_table(head, body)]
    tested = [r for r in rows if r.get("test")]
    if tested:
        lines += ["", format_table(
            ["row", "test users", "overlap@10", "Recall@10 change (95% CI)",
             "NDCG@10 change (95% CI)", "verify"],
            [[r["name"], r["test"]["users"], f"{r['test']['overlap@10']:.3f}",
              _ci(r["test"]["recall@10"]), _ci(r["test"]["ndcg@10"]),
              "PASS" if r["test"]["passed"] else "FAIL"] for r in tested])]
    return "\n".join(lines)


def plot(rows: list[dict], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        front = sorted(r["pareto"], key=lambda p: p["fp8_flop_share"])
        line, = ax.plot([p["fp8_flop_share"] for p in front],
                        [p["overlap_at_10"] for p in front], marker=".", label=r["name"])
        ax.plot([r["fp8_flop_share"]], [r["overlap_at_10"]], marker="*", markersize=12,
                color=line.get_color())
    ax.axhline(target, color="black", linestyle=":", linewidth=1, label=f"target {target}")
    ax.set_xlabel("FP8 share of the FLOPs")
    ax.set_ylabel("overlap@10 against bf16 (validation users)")
    ax.set_title("Pareto front per row (star: the searched policy)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from onerec_trt.stage_runner import log_to_stdout

    log_to_stdout()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--row", action="append", required=True, metavar="'NAME=MODEL [OPTIONS]'",
                   help="a row: its name, a model folder (or shipped name), then any "
                        "'onerec-trt quantize' options (repeatable)")
    p.add_argument("--work", type=Path, required=True, help="folder for the stages' outputs")
    p.add_argument("--out", type=Path, required=True, help="folder for the table and plot")
    p.add_argument("--title", default="FP8 frontier")
    p.add_argument("--search-users", type=int, default=1000)
    p.add_argument("--test-users", type=int, default=0,
                   help="verify each chosen graph on this many test users (default: none)")
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--reuse", action="store_true",
                   help="read a row's search from --work when the same row with the same "
                        "settings ran there before")
    p.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    specs = [spec.split("=", 1) for spec in a.row]
    if any(len(s) != 2 for s in specs):
        p.error("--row takes NAME=MODEL [quantize options]")
    rows = [one_row(name, spec, a.work, a) for name, spec in specs]
    text = "\n".join([f"# {a.title}", "", "Search: torch fake quantization on "
                      f"{rows[0]['search_users']:,} validation users, target overlap@10 "
                      f"{a.target} (one-sided 95% bound). all-FP8: every GEMM but the output "
                      "heads. Speed-ups: roofline predictions, not measured.", "", table(rows),
                      ""])
    with staged_folder(a.out, force=a.force) as tmp:
        write_json(tmp / "frontier.json", rows)
        write_text(tmp / "frontier.md", text)
        plot(rows, a.target, tmp / "frontier.png")
        write_manifest(tmp, "fp8_frontier", {k: str(v) for k, v in vars(a).items()})
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

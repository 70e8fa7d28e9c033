"""FP8 fidelity across data sets: per model, export, choose the FP8 policy on validation users
(``quantize --search``), then verify it once on test users, and tabulate.

    python scripts/fp8_fidelity.py --work /tmp/fp8 --out fp8-fidelity \
        --model ml-1m=default --model ml-100k=models/ml100k --model beauty=models/beauty

Per model NAME=FOLDER: ``onerec-trt export``, ``quantize --search`` (``--search-users``
validation users; never test users; a model folder with its own ``fp8_policy.json``, the
shipped model's, is quantized with it: it was searched the same way), ``verify`` of the
chosen graph against the bf16 rendering on ``--test-users`` test users (all of them by
default: each data set's test users are read once, here). Writes ``fidelity.json`` and
``fidelity.md`` into ``--out``; every number is ONNX Runtime's CPU simulation of the FP8 graph
against its bf16 rendering.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from onerec_trt.artifacts import staged_folder, write_json, write_manifest, write_text
from onerec_trt.tables import format_table


def one_model(name: str, model: str, work: Path, a) -> dict:
    from onerec_trt.backends import OrtBackend
    from onerec_trt.export import ExportOptions, export
    from onerec_trt.layout import CPU_GRAPH, FP8_CPU_GRAPH
    from onerec_trt.model.checkpoint import model_hash, resolve_model_path
    from onerec_trt.quantize import QuantizeOptions, quantize
    from onerec_trt.quantize.policy import model_policy
    from onerec_trt.verify import VerifyOptions, verify

    t0 = time.perf_counter()
    onnx, fp8, out = work / name / "onnx", work / name / "fp8", work / name / "verify"
    export(ExportOptions(model=model, out=str(onnx), force=True))
    own = model_policy(resolve_model_path(model))  # searched before (the shipped model's)
    q = quantize(QuantizeOptions(model=model, onnx=str(onnx), out=str(fp8), search=own is None,
                                 search_users=a.search_users, target_overlap=a.target,
                                 force=True))
    v = verify(VerifyOptions(model=model, split="test", users=a.test_users, out=str(out),
                             force=True),
               OrtBackend(onnx / CPU_GRAPH, model_sha=model_hash(model)),
               OrtBackend(fp8 / FP8_CPU_GRAPH, model_sha=model_hash(model)))
    m = v.metrics
    return {
        "dataset": v.dataset, "model": model, "test_users": v.users,
        "search": q.policy["chosen"], "bf16_layers": q.policy["bf16_layers"],
        "fp8_flop_share": q.fp8_flop_share, "flop_basis": q.flop_basis,
        "overlap@10": m["overlap@10"],
        "recall@10": {k: m["recall@10"][k] for k in ("reference", "candidate",
                                                      "relative_diff", "relative_diff_ci")},
        "ndcg@10": {k: m["ndcg@10"][k] for k in ("reference", "candidate", "relative_diff",
                                                  "relative_diff_ci")},
        "gates": {g: d.get("decision", "pass" if d["pass"] else "fail")
                  for g, d in v.gates.items()},
        "passed": v.passed, "minutes": (time.perf_counter() - t0) / 60,
    }


def table(rows: dict[str, dict]) -> str:
    def rel(d: dict) -> str:
        lo, hi = d["relative_diff_ci"]
        return f"{d['relative_diff']:+.2%} [{lo:+.2%}, {hi:+.2%}]"

    return format_table(
        ["data set", "test users", "FP8 FLOP share", "overlap@10 (valid, search)",
         "overlap@10 (test)", "Recall@10 bf16 -> FP8", "change (95% CI)", "NDCG@10 change",
         "gate"],
        [[name, r["test_users"], f"{r['fp8_flop_share']:.1%}",
          f"{r['search']['overlap_at_10']:.3f}", f"{r['overlap@10']:.3f}",
          f"{r['recall@10']['reference']:.4f} -> {r['recall@10']['candidate']:.4f}",
          rel(r["recall@10"]), rel(r["ndcg@10"]),
          ", ".join(f"{g} {d}" for g, d in r["gates"].items() if d != "pass") or "pass"]
         for name, r in rows.items()])


def main(argv: list[str] | None = None) -> int:
    from onerec_trt.stage_runner import log_to_stdout

    log_to_stdout()  # the stages' lines, as the CLI prints them
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", required=True, metavar="NAME=FOLDER",
                   help="a data set's name and its trained model folder (repeatable)")
    p.add_argument("--work", type=Path, required=True, help="folder for the stages' outputs")
    p.add_argument("--out", type=Path, required=True, help="folder for the table")
    p.add_argument("--search-users", type=int, default=1000)
    p.add_argument("--test-users", type=int, default=10**9, help="default: every test user")
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    models = dict(spec.split("=", 1) for spec in a.model)
    rows = {name: one_model(name, model, a.work, a) for name, model in models.items()}
    text = "\n".join(["# FP8 fidelity (ONNX Runtime CPU simulation of FP8 vs the bf16 "
                      "rendering; policy chosen on validation users, reported on test users)",
                      "", table(rows), ""])
    with staged_folder(a.out, force=a.force) as tmp:
        write_json(tmp / "fidelity.json", rows)
        write_text(tmp / "fidelity.md", text)
        write_manifest(tmp, "fp8_fidelity", {k: str(v) for k, v in vars(a).items()})
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Training with default options on several public data sets: train, evaluate beside the
baselines, FP8 verify, and tabulate (docs/model.md, "Training defaults on five data sets").

    python scripts/training_defaults.py --work runs/defaults --name ml-100k -- \
        --dataset table --data ml-100k.inter --columns user=user_id:token,item=item_id:token,...
    python scripts/training_defaults.py --work runs/defaults --table   # every finished one

Per data set (``--name`` and the data arguments after ``--``, exactly what a user passes to
``onerec-trt train``): ``onerec-trt train`` with no other option but ``--threads`` (so the
defaults chosen from the data are what is measured; wall time recorded), ``evaluate
--baselines`` on every test user (Recall/NDCG beside popularity, Markov, item-kNN on the same
split, and Recall@10 by how often the target occurs in training), then
``scripts/fp8_fidelity.py`` (export, ``quantize --search`` on validation users, ``verify`` on
test users). Each stage is skipped when its output exists, so runs resume. ``--table`` writes
``defaults.md`` and ``defaults.json`` from every data set under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from onerec_trt.artifacts import write_json, write_text
from onerec_trt.evaluate.popularity import format_popularity_table
from onerec_trt.tables import format_table

HERE = Path(__file__).resolve().parent
METRICS = ("recall@10", "ndcg@10")


def _run(cmd: list[str], log: Path) -> float:
    """Run ``cmd`` with its output in ``log``; its wall time in minutes."""
    t0 = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}")
    return (time.perf_counter() - t0) / 60


def one_dataset(name: str, data_args: list[str], work: Path, a) -> None:
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "model"
    if not (model / "training.json").is_file():
        minutes = _run([sys.executable, "-m", "onerec_trt.cli", "train", *data_args,
                        "--out", str(model), "--threads", str(a.threads), "--quiet", "--force"],
                       folder / "train.log")
        write_json(folder / "wall.json", {"train_minutes": minutes, "threads": a.threads})
    if not (folder / "eval.json").is_file():
        _run([sys.executable, "-m", "onerec_trt.cli", "evaluate", "--model", str(model),
              "--baselines", "--json", str(folder / "eval.json")], folder / "eval.log")
    if a.fp8 and not (folder / "fidelity" / "fidelity.json").is_file():
        _run([sys.executable, str(HERE / "fp8_fidelity.py"), "--model", f"{name}={model}",
              "--work", str(folder / "fp8"), "--out", str(folder / "fidelity"),
              "--search-users", str(a.search_users), "--test-users", str(a.test_users),
              "--force"], folder / "fp8.log")


def row(folder: Path) -> dict:
    training = json.loads((folder / "model" / "training.json").read_text())
    report = json.loads((folder / "eval.json").read_text())
    wall = json.loads((folder / "wall.json").read_text())
    fidelity = folder / "fidelity" / "fidelity.json"
    fp8 = next(iter(json.loads(fidelity.read_text()).values())) if fidelity.is_file() else None
    stats = training["dataset_stats"]
    best = training["best_epoch"]
    return {
        "users": stats["users"], "items": stats["items"], "interactions": stats["interactions"],
        "density": stats["interactions"] / (stats["users"] * stats["items"]),
        "median_length": stats["sequence_length"]["p50"],
        "chosen": {c["name"]: c["value"] for c in training.get("chosen_from_data", [])},
        "train_minutes": wall["train_minutes"], "threads": wall["threads"],
        "epochs_run": training["epochs"][-1]["epoch"], "best_epoch": best["epoch"],
        "model": {m: report[m] for m in METRICS},
        "baselines": {b: {m: v[m] for m in METRICS} for b, v in report["baselines"].items()},
        "by_target_occurrences": report["recall@10_by_target_occurrences"],
        "fp8": None if fp8 is None else {
            "fp8_flop_share": fp8["fp8_flop_share"], "overlap@10": fp8["overlap@10"],
            "test_users": fp8["test_users"], "gates": fp8["gates"], "passed": fp8["passed"],
            "recall@10_change": fp8["recall@10"]["relative_diff"],
            "ndcg@10_change": fp8["ndcg@10"]["relative_diff"]},
    }


def _verdict(r: dict) -> str:
    markov = r["baselines"]["markov"]
    above = [m.split("@")[0].capitalize() for m in METRICS if r["model"][m] >= markov[m]]
    return "both" if len(above) == 2 else (above[0] + " only" if above else "neither")


def table(rows: dict[str, dict]) -> str:
    def metric_cell(r: dict, m: str) -> str:
        b = r["baselines"]
        return (f"**{r['model'][m]:.4f}** / {b['popularity'][m]:.4f} / {b['markov'][m]:.4f} / "
                f"{b['item_knn'][m]:.4f}")

    def fp8_cell(r: dict) -> str:
        f = r["fp8"]
        if f is None:
            return "not run"
        gate = "PASS" if f["passed"] else "FAIL"
        return (f"{gate}: overlap {f['overlap@10']:.3f}, {f['fp8_flop_share']:.0%} FP8, "
                f"R {f['recall@10_change']:+.1%} ({f['test_users']:,} users)")

    return format_table(
        ["data set", "users / items / interactions (density)", "chosen", "minutes (threads)",
         "Recall@10: model / pop / Markov / kNN", "NDCG@10: model / pop / Markov / kNN",
         ">= Markov", "FP8 verify"],
        [[name, f"{r['users']:,} / {r['items']:,} / {r['interactions']:,} "
                f"({r['density']:.2%})",
          f"S {r['chosen'].get('max_history')}, codebook {r['chosen'].get('codebook')}"
          + (", sparse options" if r["chosen"].get("prefix_inputs") else ""),
          f"{r['train_minutes']:.1f} ({r['threads']})", metric_cell(r, "recall@10"),
          metric_cell(r, "ndcg@10"), _verdict(r), fp8_cell(r)]
         for name, r in rows.items()])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    data_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="data arguments for train go after --")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--name", help="the data set's name (a folder under --work)")
    p.add_argument("--table", action="store_true", help="tabulate every finished data set")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-fp8", dest="fp8", action="store_false")
    p.add_argument("--search-users", type=int, default=500)
    p.add_argument("--test-users", type=int, default=2000)
    a = p.parse_args(argv)
    if a.name:
        if not data_args:
            p.error("give the data arguments of onerec-trt train after --")
        one_dataset(a.name, data_args, a.work, a)
    if a.table:
        rows = {f.name: row(f) for f in sorted(a.work.iterdir())
                if (f / "eval.json").is_file() and (f / "wall.json").is_file()}
        text = table(rows) + "\n" + "".join(
            f"\n{name}: " + format_popularity_table(r["by_target_occurrences"]) + "\n"
            for name, r in rows.items())
        write_json(a.work / "defaults.json", rows)
        write_text(a.work / "defaults.md", text + "\n")
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

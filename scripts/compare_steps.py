"""The exported graph's beam step, csr against the dense reference: same model, same requests,
ONNX Runtime CPU, alternating calls (paired ratios), plus the graphs' sizes.

    python scripts/compare_steps.py --out step-compare           # the shipped model

Both graphs are exported here (``export --step csr`` and ``--step dense``, the bf16 CPU
rendering each) and must give identical items, codes and scores on real held-out users first.
Writes ``steps.json`` and ``steps.md`` into ``--out``. Besides whole-call latency it reports
the beam step's own kernel time (ONNX Runtime's profiler, nodes the exporter scoped ``/step*``),
since the decoder dominates a call and hides the step's difference in noise.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def step_kernel_ms(graph: Path, feed: dict, threads: int, calls: int = 10) -> float:
    """Mean kernel time per call of the beam-step nodes (``/step``, ``/step_1``, ...)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.enable_profiling = True
    so.profile_file_prefix = str(graph.parent / "profile")
    session = ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])
    for _ in range(calls):
        session.run(None, feed)
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    micros = sum(e["dur"] for e in events if e.get("cat") == "Node"
                 and e["name"].startswith("/step") and e["name"].endswith("_kernel_time"))
    return micros / calls / 1e3


def main() -> int:
    from onerec_trt.bench.stats import paired_ratio
    from onerec_trt.data.samplers import held_out
    from onerec_trt.export import ExportOptions, export
    from onerec_trt.graphs import make_session
    from onerec_trt.layout import CPU_GRAPH
    from onerec_trt.model.checkpoint import load_model
    from onerec_trt.tables import markdown_lines

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default")
    p.add_argument("--out", required=True)
    p.add_argument("--beam", type=int, default=20)
    p.add_argument("--batches", default="1,16,64")
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    graphs = {}
    for step in ("csr", "dense"):
        folder = out / step
        export(ExportOptions(model=a.model, out=str(folder), beam=a.beam, step=step,
                             force=True))
        graphs[step] = folder / CPU_GRAPH
    bundle = load_model(a.model)
    users, _ = held_out(bundle.load_data().split(), "test", 512, bundle.config.max_history)
    sessions = {s: make_session(g, threads=a.threads) for s, g in graphs.items()}
    outputs = {s: sess.run(None, {"history": users}) for s, sess in sessions.items()}
    same = all(np.array_equal(x, y) for x, y in zip(outputs["csr"], outputs["dense"],
                                                    strict=True))
    rows = []
    for batch in (int(b) for b in a.batches.split(",")):
        feed = {"history": users[:batch]}
        times = {s: [] for s in sessions}
        for rep in range(a.reps + 2):
            for s in (("csr", "dense") if rep % 2 == 0 else ("dense", "csr")):
                start = time.perf_counter()
                sessions[s].run(None, feed)
                if rep >= 2:  # two warm-up rounds
                    times[s].append(time.perf_counter() - start)
        ratio = paired_ratio(times["csr"], times["dense"])
        steps = {s: step_kernel_ms(g, feed, a.threads) for s, g in graphs.items()}
        rows.append({"batch": batch, "csr_ms": float(np.median(times["csr"])) * 1e3,
                     "dense_ms": float(np.median(times["dense"])) * 1e3, **ratio,
                     "csr_step_ms": steps["csr"], "dense_step_ms": steps["dense"]})
    sizes = {s: g.stat().st_size for s, g in graphs.items()}
    result = {"model": str(bundle.path), "beam": a.beam, "threads": a.threads, "reps": a.reps,
              "identical_on_512_test_users": same, "graph_bytes": sizes, "rows": rows,
              "backend": "onnxruntime CPUExecutionProvider, reference.cpu.onnx of each step"}
    lines = [f"csr vs dense beam step, {bundle.path.name}, beam {a.beam}, {a.threads} thread(s),"
             f" median of {a.reps} alternating calls; identical outputs on 512 test users: "
             f"{same}; graph size csr {sizes['csr'] / 2**20:.1f} MiB, dense "
             f"{sizes['dense'] / 2**20:.1f} MiB", "",
             *markdown_lines(["batch", "csr ms", "dense ms", "csr / dense (paired median)",
                              "q25-q75", "beam-step kernels csr ms", "dense ms"],
                             [[r["batch"], f"{r['csr_ms']:.2f}", f"{r['dense_ms']:.2f}",
                               f"{r['latency_ratio']:.3f}",
                               f"{r['ratio_q25']:.3f}-{r['ratio_q75']:.3f}",
                               f"{r['csr_step_ms']:.3f}", f"{r['dense_step_ms']:.3f}"]
                              for r in rows], "rrrrlrr")]
    (out / "steps.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "steps.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())

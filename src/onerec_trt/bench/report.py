"""bench.md and the PNG plots, from the bench.json dictionary."""

from __future__ import annotations

from pathlib import Path

from onerec_trt.artifacts import write_atomic
from onerec_trt.bench.machine import one_line
from onerec_trt.tables import markdown_lines, plain_lines

CPU_CAVEAT = ("CPU simulation: ONNX Runtime's CPU provider has neither FP8 nor bf16 GEMMs, so "
              "both graphs compute in fp32 and the FP8 graph adds QuantizeLinear/"
              "DequantizeLinear work. An FP8/BF16 ratio measured here is the simulation's "
              "overhead and says nothing about FP8 speed on a GPU.")


def pair_note(pair: dict, kinds: dict[str, str], machine: dict) -> str:
    if kinds.get(pair["fp8"]) == "trt":
        gpu = (machine.get("gpu") or {}).get("name", "GPU")
        return f"TensorRT engines on {gpu}: a real FP8 measurement"
    return CPU_CAVEAT


def _mib(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.0f}"


def summary_lines(result: dict) -> list[str]:
    """Every backend's latency as fixed-width lines: what bench prints when it is done."""
    rows = []
    for name, b in result["backends"].items():
        for batch, r in b["results"].items():
            peak = b["memory"].get(batch, {}).get("VmHWM")
            rows.append([name, batch, r["p50_ms"], r["p99_ms"], r["throughput_users_per_s"],
                         "-" if peak is None else f"{peak / 1024:.0f}"])
    return plain_lines(["backend", "batch", "p50 ms", "p99 ms", "users/s", "peak MiB"],
                       ["<18", ">6", ">10.2f", ">10.2f", ">10.1f", ">10"], rows)


def latency_rows(result: dict) -> list[str]:
    rows = []
    for name, backend in result["backends"].items():
        for batch, r in backend["results"].items():
            mem = backend["memory"].get(str(batch), backend["memory"].get(batch, {}))
            cuda = mem.get("cuda_max_allocated")
            peak = _mib(mem.get("VmHWM")) + (f" (GPU {cuda / 2**20:.0f})" if cuda else "")
            rows.append([name, batch, f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                         f"{r['throughput_users_per_s']:.1f}", peak, r["samples"]])
    return markdown_lines(["backend", "batch", "p50 ms", "p99 ms", "users/s", "peak RSS MiB",
                           "samples"], rows, "lrrrrrr")


def load_rows(result: dict) -> list[str]:
    """Each backend's load: resident memory before and after building it."""
    rows = [[n, "-" if b.get("load_s") is None else format(b["load_s"], ".1f"),
             _mib(b.get("rss_start_kb")), _mib(b.get("rss_loaded_kb"))]
            for n, b in result["backends"].items()]
    return markdown_lines(["backend", "load s", "RSS before load MiB", "RSS loaded MiB"], rows,
                          "lrrr") + [""]


def ratio_rows(result: dict) -> list[str]:
    if not result["pairs"]:
        return ["No FP8/BF16 pair could be formed (both backends of a pair must run)."]
    rows = [[f"{pair['fp8']} / {pair['bf16']}", batch, f"{r['latency_ratio']:.3f}",
             f"{r['ratio_q25']:.3f}-{r['ratio_q75']:.3f}", f"{r['throughput_ratio']:.3f}",
             pair["kind"]]
            for pair in result["pairs"] for batch, r in pair["by_batch"].items()]
    return markdown_lines(["pair", "batch", "latency FP8/BF16 (median)", "q25-q75",
                           "throughput FP8/BF16", "note"], rows, "lrrrrl")


def agreement_lines(agreement: dict) -> list[str]:
    lines = ["## Same request on every backend", "",
             f"Outputs of one request of {agreement['batch']} users. Against torch-bf16, a bf16 "
             "backend runs the same computation in another rendering: overlap near 1 and score "
             "differences at bf16 rounding level (the exact order can differ where two items "
             "score within a rounding step of each other). An FP8 backend differs from its BF16 "
             "partner by design; the verify stage judges whether that is acceptable.", ""]
    rows = []
    for name, refs in agreement.get("pairs", {}).items():
        for ref, a in refs.items():
            diff = "-" if a["score_abs_diff_median"] is None else \
                f"{a['score_abs_diff_median']:.4f}"
            rows.append([name, ref, f"{a['exact_match']:.3f}", f"{a['overlap']:.3f}", diff])
    rows += [[name, "(failed)", why, "", ""] for name, why in agreement.get("failed", {}).items()]
    return lines + markdown_lines(["backend", "against", "identical top-K", "overlap@K",
                                   "median abs score diff"], rows, "llrrr") + [""]


def peer_lines(result: dict) -> list[str]:
    """The peers section: same items?, then how many times faster each project backend
    answered the same users (paired per repetition), then what each peer does differently."""
    peers = result.get("peers")
    if not peers:
        return []
    ref = peers.get("reference")
    lines = ["## Against what users run today (peers)", "",
             f"Every peer answered the same users as `{ref}` (the same histories, in the same "
             "requests, alternating). A peer is timed against the project only when its items "
             "are identical for every user; one that disagrees is reported, with no ratio.", ""]
    rows = []
    for name, p in peers["peers"].items():
        if "failed" in p:
            rows.append([name, ref, "-", "-", f"failed: {p['failed']}"])
            continue
        diff = "-" if p["max_score_diff"] is None else f"{p['max_score_diff']:.2g}"
        verdict = "same items" if p["agrees"] else "DISAGREES: not compared on speed"
        rows.append([name, p["against"], f"{p['identical']}/{p['users']}", diff, verdict])
    rows += [[name, "-", "-", "-", f"skipped: {why}"] for name, why in result["skipped"].items()
             if name in ("optimum", "hf")]
    if peers.get("optimum"):
        rows.append(["optimum", "-", "-", "-", peers["optimum"]])
    lines += markdown_lines(["peer", "against", "identical top-K", "max abs score diff",
                             "verdict"], rows, "llrrl")
    speedups = [[backend, name, batch, f"{r['latency_ratio']:.1f}",
                 f"{r['ratio_q25']:.1f}-{r['ratio_q75']:.1f}",
                 f"{r['ratio_min']:.1f}-{r['ratio_max']:.1f}", r["repetitions"]]
                for name, p in peers["peers"].items()
                for backend, by_batch in p.get("speedups", {}).items()
                for batch, r in by_batch.items()]
    lines += ["", *markdown_lines(["backend", "peer", "batch",
                                   "x faster (median of paired ratios)", "q25-q75", "min-max",
                                   "repetitions"], speedups, "llrrrrr")]
    lines += ["", "What each peer does differently:", ""]
    lines += [f"- {name}: {p['differs_by']}" for name, p in peers["peers"].items()
              if p.get("differs_by")]
    lines += [f"- {note}" for note in peers.get("notes", {}).values()]
    return lines + [""]


def format_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"# onerec-trt bench: {result['model']['path']}", "",
             f"- command: `{result['command']}`",
             f"- machine: {one_line(m)}; {m['platform']}; load average at start "
             f"{m['load_average']}, at end {result['load_average_end']}",
             f"- request: beam {result['request']['beam']}, top-{result['request']['topk']}, "
             f"history {result['request']['history_length']} "
             f"({result['request']['histories']}), "
             f"{result['options']['threads']} thread(s) per backend, each in its own process",
             f"- schedule: {result['schedule']}", "",
             "## Latency, throughput and peak memory", "",
             *latency_rows(result), "",
             "Peak RSS: the worker process's VmHWM over the timed calls of that batch size "
             "(restarted after warm-up), Python and the backend's libraries included.", "",
             *load_rows(result), *peer_lines(result),
             "## FP8 / BF16 (paired ratios of alternating calls)", "",
             *ratio_rows(result), ""]
    if any(p["kind"] == "cpu-simulation" for p in result["pairs"]):
        lines += [f"> {CPU_CAVEAT}", ""]
    if result["agreement"]:
        lines += agreement_lines(result["agreement"])
    if result["skipped"]:
        lines += ["## Skipped backends", "",
                  *markdown_lines(["backend", "reason"], list(result["skipped"].items())), ""]
    if result.get("scaling"):
        from onerec_trt.bench.scaling import scaling_markdown

        lines += scaling_markdown(result["scaling"])
    return "\n".join(lines) + "\n"


def plot_throughput(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, backend in result["backends"].items():
        points = sorted((int(b), r["throughput_users_per_s"]) for b, r in
                        backend["results"].items())
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("users per request (batch)")
    ax.set_ylabel("throughput (users/s, at p50 latency)")
    ax.set_title(f"onerec-trt bench on {result['machine'].get('cpu') or 'this machine'}",
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path

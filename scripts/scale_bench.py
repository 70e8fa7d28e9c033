"""Memory and time at production scale: every stage of the scale path through the CLI, each
in its own process, with its wall time, its peak resident memory and the files it wrote.

    python scripts/scale_bench.py --work /tmp/scale --out scale-bench   # the paper preset, 1M items

The run: ``init --preset paper --items 1000000 --codebook 8192 --levels 3``, then export (beam
512), quantize (``--calib`` histories), plugins, lint, verify (``--verify`` histories, the fp32
graph against torch) and triton export. Peak memory is the child's ``ru_maxrss`` (resident set,
page cache of memory-mapped files included). Writes ``scale.json`` and ``scale.md`` into
``--out``; numbers are of this machine, said in the table's header.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path


def stage_commands(a, work: Path) -> list[tuple[str, list[str]]]:
    m, e, q, p = (str(work / name) for name in ("model", "onnx", "fp8", "plugins"))
    hist = str(work / "model" / "histories.npy")
    return [
        ("init", ["init", "--preset", a.preset, "--items", str(a.items), "--codebook",
                  str(a.codebook), "--levels", str(a.levels), "--histories",
                  str(max(a.calib, a.verify)), "--out", m]),
        ("export", ["export", "--model", m, "--beam", str(a.beam), "--topk", "10", "--out", e]),
        ("quantize", ["quantize", "--model", m, "--onnx", e, "--out", q, "--histories", hist,
                      "--calib-users", str(a.calib)]),
        ("plugins", ["plugins", "--onnx", e, "--fp8", q, "--out", p, "--check-users", "0"]),
        ("lint", ["lint", "--quiet", f"{e}/reference.bf16.onnx", f"{q}/fp8.onnx",
                  f"{p}/reference.plugins.onnx", f"{p}/fp8.plugins.onnx"]),
        ("verify", ["verify", "--reference", f"{e}/reference.fp32.onnx", "--candidate", "torch",
                    "--model", m, "--histories", hist, "--users", str(a.verify),
                    "--out", str(work / "verify")]),
        ("triton export", ["triton", "export", "--model", m, "--onnx", e, "--fp8", q,
                           "--out", str(work / "triton")]),
    ]


def run_stage(name: str, args: list[str], log: Path, raw: bool = False) -> dict:
    """Run ``onerec-trt ARGS`` (``raw``: the command ARGS) as a child; its wall time, peak RSS
    and exit code."""
    cli = args if raw else [sys.executable, "-m", "onerec_trt.cli", *args]
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cli, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    shown = shlex.join(args) if raw else "onerec-trt " + shlex.join(args)
    return {"stage": name, "command": shown, "exit": code,
            "seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_gib": usage.ru_maxrss / 2**20,
            "log_tail": log.read_text()[-1500:] if code else ""}


def folder_bytes(folder: Path, seen: set[int]) -> dict[str, int]:
    """Bytes of each file a stage wrote; a hard link to an earlier stage's file (a plugin
    graph's weights, a Triton repository's graph) counts 0: it costs no disk."""
    if not folder.is_dir():
        return {}
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            inode = path.stat().st_ino
            out[str(path.relative_to(folder))] = 0 if inode in seen else path.stat().st_size
            seen.add(inode)
    return out


def stage_table(stages: list[dict]) -> list[str]:
    """The markdown table of the stages' time, memory and disk."""
    from onerec_trt.tables import markdown_lines

    rows = []
    for r in stages:
        written = sum(r.get("bytes", {}).values()) / 2**30
        cpu = f"{r['cpu_seconds'] / 60:.1f} min" if "cpu_seconds" in r else "-"
        rows.append([r["stage"], f"{r['seconds'] / 60:.1f} min", cpu,
                     f"{r['peak_rss_gib']:.1f} GiB", f"{written:.2f} GiB",
                     "ok" if r["exit"] == 0 else "FAILED"])
    return markdown_lines(["stage", "wall time", "CPU time", "peak RSS", "new on disk", "result"],
                          rows, "lrrrrl")


def markdown(result: dict) -> str:
    a = result["options"]
    lines = [f"Scale run: `{a['preset']}` preset, {a['items']:,} items in {a['levels']} x "
             f"{a['codebook']} codes, beam {a['beam']}; {result['parameters']} on "
             f"{result['machine']} (CPU only; backend of every stage: torch / ONNX Runtime "
             "CPU).", "", *stage_table(result["stages"])]
    return "\n".join(lines) + "\n"


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB")


def finish(result: dict, table: str, work: Path, out: Path, keep: bool) -> int:
    """Write scale.json and scale.md, print the table, remove ``work`` unless ``keep``; the
    exit code (0: every stage ran)."""
    (out / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "scale.md").write_text(table)
    print(table)
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["exit"] == 0 for r in result["stages"]) else 1


def run_stages(stages: list[tuple[str, list[str]]], folders: dict[str, str], work: Path,
               out: Path, result: dict, raw: tuple[str, ...] = ()) -> None:
    """Run each stage in turn into ``result["stages"]`` (``scale.json`` after each); stop at
    the first failure. ``raw``: stages whose arguments are a whole command."""
    seen: set[int] = set()
    for name, args in stages:
        print(f"== {name}: {shlex.join(args)}", flush=True)
        r = run_stage(name, args, out / f"{name.replace(' ', '_')}.log", raw=name in raw)
        r["bytes"] = folder_bytes(work / folders[name], seen) if name in folders else {}
        result["stages"].append(r)
        print(f"   {r['seconds'] / 60:.1f} min, peak RSS {r['peak_rss_gib']:.1f} GiB, exit "
              f"{r['exit']}", flush=True)
        (out / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
        if r["exit"]:
            print(r["log_tail"], flush=True)
            break


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="scratch folder (tens of GB at paper scale)")
    p.add_argument("--out", required=True, help="folder for scale.json and scale.md")
    p.add_argument("--preset", default="paper")
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--codebook", type=int, default=8192)
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--beam", type=int, default=512)
    p.add_argument("--calib", type=int, default=16, help="calibration histories")
    p.add_argument("--verify", type=int, default=16, help="verify histories")
    p.add_argument("--keep", action="store_true", help="keep --work afterwards")
    a = p.parse_args()
    work, out = Path(a.work), Path(a.out)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out.mkdir(parents=True, exist_ok=True)
    folders = {"init": "model", "export": "onnx", "quantize": "fp8", "plugins": "plugins",
               "verify": "verify", "triton export": "triton"}
    result = {"options": vars(a), "machine": machine(), "stages": []}
    run_stages(stage_commands(a, work), folders, work, out, result)
    manifest = json.loads((work / "model" / "manifest.json").read_text())
    result["parameters"] = f"{manifest['model']['parameters'] / 1e6:,.0f}M parameters"
    if (work / "verify" / "verify.json").is_file():
        from onerec_trt.reports import read_stage
        from onerec_trt.verify import VerifyReport

        result["verify"] = read_stage(work / "verify", VerifyReport).metrics
    return finish(result, markdown(result), work, out, a.keep)


if __name__ == "__main__":
    sys.exit(main())

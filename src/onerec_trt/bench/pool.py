"""The parent side: one worker process per backend, driven in alternating order.

Only one worker computes at a time (the parent waits for each reply), so the backends never
compete for the cores; they only share the machine's drift, which the alternation cancels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from onerec_trt.bench.stats import alternating_order
from onerec_trt.progress import progress_bar


class WorkerFailed(RuntimeError):
    pass


class BackendWorker:
    """A ``python -m onerec_trt.bench.worker`` child process for one backend."""

    def __init__(self, name: str, threads: int):
        self.name = name
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"bench-{name}-", suffix=".log",
                                               delete=False)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "TQDM_DISABLE": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "onerec_trt.bench.worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, env=env, bufsize=1)

    def call(self, cmd: str, **msg) -> dict:
        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **msg}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            raise WorkerFailed(f"{self.name}: worker exited (code {self.proc.poll()}): "
                               f"{self.stderr_tail()}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise WorkerFailed(f"{self.name}: {reply.get('error')}")
        return reply

    def stderr_tail(self, lines: int = 3) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "no output"

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "exit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


@dataclass
class Measurements:
    timings: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    memory: dict[str, dict[int, dict]] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)  # backend -> why it stopped early
    order: list[list[str]] = field(default_factory=list)  # the calls of the first batch size


def measure(workers: dict[str, BackendWorker], batches: list[int], reps: int | dict[int, int],
            warmup: int, max_call_s: float, limits: dict[str, int | None] | None = None,
            progress: bool = True) -> Measurements:
    """Warm up, then ``reps`` alternating repetitions per batch size (ascending; a dict: by
    batch size). Repetition r sends every backend the same users, rows r*batch.. of the
    histories, so a pass of repetitions covers every user.

    ``limits``: the largest batch a backend accepts (an engine's profile), if any.
    """
    out = Measurements({n: {} for n in workers}, {n: {} for n in workers})
    per_batch = reps if isinstance(reps, dict) else {b: reps for b in batches}
    total = sum(len(workers) * (per_batch[b] + max(warmup, 1)) for b in batches)
    bar = progress_bar(total=total, desc="bench", unit="call", disable=not progress, leave=False)
    for batch in sorted(batches):
        for name, limit in (limits or {}).items():
            if limit is not None and batch > limit and name not in out.stopped:
                out.stopped[name] = f"not timed at batch >= {batch}: above its profile's " \
                                    f"largest batch {limit}"
        active = [n for n in workers if n not in out.stopped]
        for name in list(active):
            if not _warm_up(workers[name], batch, warmup, max_call_s, out):
                active.remove(name)
            bar.update(max(warmup, 1))
        for name in list(active):
            try:
                workers[name].call("reset_peak")
            except WorkerFailed as exc:
                _stop(out, name, batch, str(exc))
        for rep in range(per_batch[batch]):
            order = alternating_order(active, rep)
            if batch == min(batches):
                out.order.append(order)
            for name in order:
                if name in out.stopped:
                    continue
                try:
                    seconds = workers[name].call("run", batch=batch, calls=1,
                                                 start=rep * batch)["seconds"][0]
                except WorkerFailed as exc:
                    _stop(out, name, batch, str(exc))
                    continue
                out.timings[name].setdefault(batch, []).append(seconds)
                bar.update(1)
        for name in active:
            if name not in out.stopped:
                try:
                    out.memory[name][batch] = workers[name].call("memory")
                except WorkerFailed as exc:
                    _stop(out, name, batch, str(exc))
    bar.close()
    return out


def _warm_up(worker: BackendWorker, batch: int, warmup: int, max_call_s: float,
             out: Measurements) -> bool:
    """Untimed calls; False (and the reason recorded) when the backend must stop here."""
    try:
        first = worker.call("run", batch=batch, calls=1)["seconds"][0]
        if first > max_call_s:
            _stop(out, worker.name, batch, f"one request of {batch} users took {first:.1f}s "
                                           f"(> --max-call-s {max_call_s:g})")
            return False
        if warmup > 1:
            worker.call("run", batch=batch, calls=warmup - 1)
    except WorkerFailed as exc:
        _stop(out, worker.name, batch, str(exc))
        return False
    return True


def _stop(out: Measurements, name: str, batch: int, why: str) -> None:
    out.timings[name].pop(batch, None)
    out.stopped[name] = f"not timed at batch >= {batch}: {why}"

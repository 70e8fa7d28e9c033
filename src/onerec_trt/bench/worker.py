"""One backend in its own process (``python -m onerec_trt.bench.worker``), so its peak memory
is its own. The parent sends one JSON command a line on stdin and reads one JSON reply a line.

Commands: ``load`` (open the backend object the parent sends, pickled: ``bench/backends.py``),
``run`` (time ``calls`` requests of ``batch`` users), ``reset_peak`` (restart the peak-memory
counters), ``memory``, ``outputs`` (the items of one request, for the agreement check),
``timed_outputs`` (every user's first timed answer, for the peer check), ``exit``. Anything a
library prints goes to stderr; the protocol has stdout to itself.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def histories(batch: int, length: int, num_items: int, seed: int) -> np.ndarray:
    """Full-length synthetic histories [batch, length], the same in every worker.

    The graphs' cost does not depend on the item ids (S is fixed, padding is masked, not
    skipped), so random items time the same work as real users' histories.
    """
    rng = np.random.default_rng([seed, batch])
    return rng.integers(1, num_items + 1, size=(batch, length), dtype=np.int64)


def memory_kb() -> dict:
    """VmHWM (peak resident set since start or the last reset) and VmRSS, in kB."""
    out = {}
    if STATUS.is_file():
        for line in STATUS.read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
    if "VmHWM" not in out:  # no /proc: getrusage's peak (kB on Linux), never reset
        out["VmHWM"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out


def reset_peak() -> bool:
    """Restart VmHWM at the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


class Worker:
    def __init__(self):
        self.run = None
        self.spec: dict = {}
        self.cuda = False
        self.seen: dict[str, tuple[list, list]] = {}  # user -> (items, scores) of timed calls

    def load(self, msg: dict) -> dict:
        from onerec_trt.bench.backends import from_parent

        before, start = memory_kb(), time.perf_counter()
        self.spec = msg["spec"]
        backend = from_parent(msg["backend"]).open()
        info = backend.info()

        def run(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            out = backend.run(history)
            return out["items"], out["scores"]

        self.run = run
        seconds = time.perf_counter() - start
        self.cuda = "cuda" in str(info.get("device", "")) or self.spec["kind"] == "trt"
        return {"ok": True, "info": info, "rss_start_kb": before.get("VmRSS"),
                "rss_loaded_kb": memory_kb().get("VmRSS"), "pid": os.getpid(),
                "load_s": seconds}

    def _users(self, batch: int, start: int = 0) -> tuple[np.ndarray, list[str]]:
        """(histories [batch, S], their user keys): rows start.. of the file, in turn (wrapping);
        synthetic rows are keyed by the batch size that drew them."""
        s = self.spec
        if s.get("histories_file"):  # the user's requests, rows in turn
            rows = np.load(s["histories_file"], allow_pickle=False).astype(np.int64)
            index = (start + np.arange(batch)) % len(rows)
            return rows[index], [str(i) for i in index.tolist()]
        return (histories(batch, s["history_length"], s["num_items"], s["seed"]),
                [f"synthetic {batch}:{i}" for i in range(batch)])

    def _input(self, batch: int) -> np.ndarray:
        return self._users(batch)[0]

    def time_calls(self, msg: dict) -> dict:
        history, users = self._users(msg["batch"], msg.get("start", 0))
        seconds = []
        for _ in range(msg.get("calls", 1)):
            start = time.perf_counter()
            items, scores = self.run(history)
            self._sync()
            seconds.append(time.perf_counter() - start)
        self._remember(users, items, scores)
        return {"ok": True, "seconds": seconds}

    def _remember(self, users: list[str], items, scores) -> None:
        """Each user's first timed answer: the peers are checked on what was timed."""
        items = np.asarray(items).tolist()
        scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), neginf=-1e30).tolist()
        for row, user in enumerate(users):
            self.seen.setdefault(user, (items[row], scores[row]))

    def timed_outputs(self, msg: dict) -> dict:
        """Every user's items and scores from the timed calls."""
        return {"ok": True, "users": {u: {"items": i, "scores": s}
                                      for u, (i, s) in self.seen.items()}}

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def reset(self, msg: dict) -> dict:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        return {"ok": True, "reset": reset_peak()}

    def memory(self, msg: dict) -> dict:
        out = {"ok": True, **memory_kb()}
        if self.cuda:
            import torch

            out["cuda_max_allocated"] = int(torch.cuda.max_memory_allocated())
        return out

    def outputs(self, msg: dict) -> dict:
        items, scores = self.run(self._input(msg["batch"]))
        scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), neginf=-1e30)
        return {"ok": True, "items": np.asarray(items).tolist(), "scores": scores.tolist()}


def main() -> int:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints, Python or C, go to stderr
    sys.stdout = sys.stderr
    worker = Worker()
    handlers = {"load": worker.load, "run": worker.time_calls, "reset_peak": worker.reset,
                "memory": worker.memory, "outputs": worker.outputs,
                "timed_outputs": worker.timed_outputs}
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "exit":
            break
        try:
            reply = handlers[msg["cmd"]](msg)
        except Exception as exc:  # reported to the parent, which skips the backend
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        protocol.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

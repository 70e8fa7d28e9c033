"""Clients for a served model, a bounded load test on loopback, and ``onerec-trt triton load``.

``load_test`` runs C client threads (each with its own connection, HTTP or gRPC), each sending
R requests of mixed batch sizes drawn from a pool of histories whose answers the direct ONNX
Runtime session already computed; every response is compared exactly (items, codes and scores).
Bounded: C x R requests at most, and a wall-time limit after which no new request starts.
``load_repository`` starts a local server on a repository and load-tests it with held-out users.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from onerec_trt.errors import user_error
from onerec_trt.layout import DEFAULT_RUN

log = logging.getLogger(__name__)

PROTOCOLS = ("http", "grpc")


class TritonClient:
    """One connection (tritonclient HTTP or gRPC) to one model; one per thread."""

    def __init__(self, protocol: str, url: str, model: str,
                 outputs: tuple[str, ...] = ("items", "scores", "codes")):
        if protocol == "http":
            import tritonclient.http as client
        elif protocol == "grpc":
            import tritonclient.grpc as client
        else:
            raise user_error(f"unknown protocol {protocol!r}", "expected http or grpc")
        if not url.startswith("127.0.0.1:") and not url.startswith("localhost:"):
            raise user_error(f"{url}: the load test runs on loopback only")
        self.protocol, self.model, self._mod = protocol, model, client
        self.outputs = outputs
        self.client = client.InferenceServerClient(url=url)

    def infer(self, history: np.ndarray, dtype: str = "INT64") -> dict[str, np.ndarray]:
        """Raises ``tritonclient.utils.InferenceServerException`` with the server's message."""
        inp = self._mod.InferInput("history", list(history.shape), dtype)
        inp.set_data_from_numpy(history)
        result = self.client.infer(self.model, [inp], outputs=[
            self._mod.InferRequestedOutput(name) for name in self.outputs])
        return {name: result.as_numpy(name) for name in self.outputs}

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> TritonClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def same_result(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> bool:
    return all(name in got and got[name].dtype == want[name].dtype
               and np.array_equal(got[name], want[name]) for name in want)


@dataclass
class LoadTestOptions:
    repo: str = str(DEFAULT_RUN.triton)  # a CPU model repository
    model: str | None = None  # model folder for the held-out users (None: the repository's)
    public: str | None = None  # which public model (None: the first)
    users: int = 512  # held-out users in the request pool
    clients: int = 8
    requests: int = 100  # per client
    batch_sizes: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    protocol: str = "mixed"  # http, grpc, or mixed (clients alternate)
    time_limit_s: float = 300.0  # no request starts after this
    seed: int = 0


@dataclass
class _ClientLog:
    protocol: str
    latencies: list[float] = field(default_factory=list)
    rows: int = 0
    wrong: int = 0
    errors: list[str] = field(default_factory=list)


def _run_client(index: int, opts: LoadTestOptions, urls: dict[str, str], model: str,
                pool: np.ndarray, expected: dict[str, np.ndarray], deadline: float,
                log: _ClientLog) -> None:
    rng = np.random.default_rng([opts.seed, index])
    try:
        client = TritonClient(log.protocol, urls[log.protocol], model, tuple(expected))
    except Exception as exc:  # connection failures count as errors, never hang the test
        log.errors.append(f"connect: {exc}")
        return
    with client:
        for r in range(opts.requests):
            if time.monotonic() > deadline:
                break
            batch = opts.batch_sizes[(index + r) % len(opts.batch_sizes)]
            rows = rng.choice(len(pool), size=batch, replace=len(pool) < batch)
            start = time.perf_counter()
            try:
                got = client.infer(pool[rows])
            except Exception as exc:
                log.errors.append(str(exc).splitlines()[0])
                continue
            log.latencies.append(time.perf_counter() - start)
            log.rows += batch
            log.wrong += not same_result(got, {k: v[rows] for k, v in expected.items()})


def check_options(opts: LoadTestOptions) -> None:
    """Counts that must be positive, refused before anything starts."""
    if opts.clients <= 0 or opts.requests <= 0:
        raise user_error(f"--clients and --requests must be positive, got {opts.clients} and "
                         f"{opts.requests}")
    if not opts.batch_sizes or any(b <= 0 for b in opts.batch_sizes):
        raise user_error(f"--batch-sizes must be positive integers, got {opts.batch_sizes}")
    if opts.protocol not in (*PROTOCOLS, "mixed"):
        raise user_error(f"unknown --protocol {opts.protocol!r}", "expected http, grpc or mixed")


def load_test(urls: dict[str, str], model: str, pool: np.ndarray,
              expected: dict[str, np.ndarray], opts: LoadTestOptions) -> dict:
    """Stats of one load test; ``urls`` maps protocol -> '127.0.0.1:PORT'."""
    check_options(opts)
    protocols = PROTOCOLS if opts.protocol == "mixed" else (opts.protocol,)
    logs = [_ClientLog(protocols[i % len(protocols)]) for i in range(opts.clients)]
    deadline = time.monotonic() + opts.time_limit_s
    threads = [threading.Thread(target=_run_client, daemon=True,
                                args=(i, opts, urls, model, pool, expected, deadline, logs[i]))
               for i in range(opts.clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summarize(logs, time.perf_counter() - start, opts)


def summarize(logs: list[_ClientLog], wall_s: float, opts: LoadTestOptions) -> dict:
    lat = np.array([x for log in logs for x in log.latencies]) * 1e3
    errors = [e for log in logs for e in log.errors]
    done, rows = len(lat), sum(log.rows for log in logs)
    pct = {f"p{q}": float(np.percentile(lat, q)) if done else None for q in (50, 90, 99)}
    return {
        "options": asdict(opts),
        "requests_planned": opts.clients * opts.requests,
        "requests_ok": done,
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "wrong_responses": sum(log.wrong for log in logs),
        "users": rows,
        "wall_s": wall_s,
        "throughput_rps": done / wall_s if wall_s else 0.0,
        "throughput_users_per_s": rows / wall_s if wall_s else 0.0,
        "latency_ms": {**pct, "max": float(lat.max()) if done else None},
        "by_protocol": {p: sum(len(log.latencies) for log in logs if log.protocol == p)
                        for p in sorted({log.protocol for log in logs})},
    }


def format_stats(stats: dict) -> str:
    lat = stats["latency_ms"]
    fmt = "{:.1f}".format
    return (f"{stats['requests_ok']}/{stats['requests_planned']} requests ok "
            f"({', '.join(f'{p} {n}' for p, n in stats['by_protocol'].items())}), "
            f"{stats['errors']} errors, {stats['wrong_responses']} wrong responses, "
            f"{stats['users']} users in {stats['wall_s']:.1f} s\n"
            f"throughput {stats['throughput_rps']:.1f} requests/s, "
            f"{stats['throughput_users_per_s']:.1f} users/s; latency ms p50 "
            f"{fmt(lat['p50'] or 0)} p90 {fmt(lat['p90'] or 0)} p99 {fmt(lat['p99'] or 0)} "
            f"max {fmt(lat['max'] or 0)}")


def held_out_histories(model: str, users: int, split: str = "test", seed: int = 0) -> np.ndarray:
    """[users, S] left-padded histories of a seeded sample of held-out users."""
    from onerec_trt.data.samplers import held_out
    from onerec_trt.model.checkpoint import load_model

    if users <= 0:
        raise user_error(f"--users must be positive, got {users}")
    bundle = load_model(model)
    return held_out(bundle.load_data().split(), split, users, bundle.config.max_history,
                    seed)[0]


def direct_outputs(graph: Path, pool: np.ndarray, outputs: list[str],
                   chunk: int = 64) -> tuple[dict[str, np.ndarray], float]:
    """The direct ONNX Runtime session's answers for ``pool`` and the seconds its runs took
    (session creation not included)."""
    from onerec_trt.graphs import make_session

    session = make_session(graph, threads=1)
    start = time.perf_counter()
    parts = [session.run(outputs, {"history": pool[i:i + chunk]})
             for i in range(0, len(pool), chunk)]
    seconds = time.perf_counter() - start
    return {name: np.concatenate([p[j] for p in parts]) for j, name in enumerate(outputs)}, seconds


def load_repository(opts: LoadTestOptions) -> dict:
    """``onerec-trt triton load``: a local server on ``repo``, then ``load_test`` against it with
    held-out users, every answer compared with the direct ONNX Runtime session's."""
    import onnxruntime

    from onerec_trt.triton.server import ServerOptions, TritonServer, read_repository

    check_options(opts)
    repo = opts.repo
    info = read_repository(repo)
    public = opts.public or next(iter(info.public))
    if public not in info.public:
        raise user_error(f"{repo} has no public model {public!r}",
                         f"it serves: {', '.join(info.public)}")
    max_batch = int(info.batching["max_batch_size"])
    if max(opts.batch_sizes) > max_batch:
        raise user_error(f"--batch-sizes {max(opts.batch_sizes)} is above the repository's "
                         f"max_batch_size {max_batch}")
    generate = info.generate_model_of(public)
    outputs = [t["name"] for t in info.contract["outputs"]]
    pool = held_out_histories(opts.model or info.model, opts.users)
    log.info(f"{len(pool)} held-out users; direct ONNX Runtime answers ...")
    expected, direct_s = direct_outputs(Path(repo) / generate / "1" / "model.onnx", pool, outputs)
    with TritonServer(ServerOptions(repo=repo, http_port=0, grpc_port=0,
                                    metrics_port=0)) as server:
        log.info(f"tritonserver ready (HTTP {server.http_url}, gRPC {server.grpc_url}); "
                 f"{opts.clients} clients x {opts.requests} requests ...")
        stats = load_test({"http": server.http_url, "grpc": server.grpc_url}, public, pool,
                          expected, opts)
        version = server.version()
    stats.update(direct_users_per_s=len(pool) / direct_s,  # in-process, 1 thread, batch 64
                 model=public, precision=info.public[public], batching=info.batching,
                 instances=info.instances, pool_users=int(len(pool)),
                 backend=f"tritonserver {version} (nvidia-pytriton) python backend, onnxruntime "
                         f"{onnxruntime.__version__} CPUExecutionProvider, loopback",
                 machine=f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}")
    return stats

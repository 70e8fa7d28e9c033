"""``onerec-trt triton load``: load-test a CPU repository on a local server with real users.

Held-out users' histories (the model's dataset, leave-one-out split) form the pool; the direct
ONNX Runtime runner (``make_session`` on the repository's own graph) answers them first, then
the server must return exactly the same for every request of the load test.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

from onerec_trt.errors import user_error
from onerec_trt.serve.loadtest import LoadTestOptions, load_test
from onerec_trt.serve.server import ServerOptions, TritonServer, read_repository


def held_out_histories(model: str, users: int, split: str = "test", seed: int = 0) -> np.ndarray:
    """[users, S] left-padded histories of a seeded sample of held-out users."""
    from onerec_trt.data import pad_histories
    from onerec_trt.evaluate import sample_users
    from onerec_trt.model.folder import load_model

    if users <= 0:
        raise user_error(f"--users must be positive, got {users}")
    bundle = load_model(model)
    data = bundle.load_data()
    sp = data.split()
    chosen = sample_users(sp.num_users, users, seed)
    hist = sp.histories(split)
    return pad_histories([hist[i] for i in chosen], bundle.config.max_history)


def direct_outputs(graph: Path, pool: np.ndarray, outputs: list[str],
                   chunk: int = 64) -> tuple[dict[str, np.ndarray], float]:
    """The direct ONNX Runtime runner's answers for ``pool`` and the seconds its runs took
    (session creation not included)."""
    from onerec_trt.engines.onnxrt import make_session

    session = make_session(graph, threads=1)
    start = time.perf_counter()
    parts = [session.run(outputs, {"history": pool[i:i + chunk]})
             for i in range(0, len(pool), chunk)]
    seconds = time.perf_counter() - start
    return {name: np.concatenate([p[j] for p in parts]) for j, name in enumerate(outputs)}, seconds


def bench_repository(repo: str, model: str | None, users: int, opts: LoadTestOptions,
                     public: str | None = None, log=print) -> dict:
    import onnxruntime

    info = read_repository(repo)
    public = public or next(iter(info["public"]))
    if public not in info["public"]:
        raise user_error(f"{repo} has no public model {public!r}",
                         f"it serves: {', '.join(info['public'])}")
    runner = info["runners"][info["public"][public]]["model"]
    outputs = [t["name"] for t in info["contract"]["outputs"]]
    pool = held_out_histories(model or info["model"], users)
    log(f"{len(pool)} held-out users; direct ONNX Runtime answers ...")
    expected, direct_s = direct_outputs(Path(repo) / runner / "1" / "model.onnx", pool, outputs)
    with TritonServer(ServerOptions(repo=repo, http_port=0, grpc_port=0,
                                    metrics_port=0)) as server:
        log(f"tritonserver ready (HTTP {server.http_url}, gRPC {server.grpc_url}); "
            f"{opts.clients} clients x {opts.requests} requests ...")
        stats = load_test({"http": server.http_url, "grpc": server.grpc_url}, public, pool,
                          expected, opts)
        version = server.version()
    stats.update(direct_users_per_s=len(pool) / direct_s,  # in-process, 1 thread, batch 64
                 model=public, precision=info["public"][public], batching=info["batching"],
                 instances=info["instances"], pool_users=int(len(pool)),
                 backend=f"tritonserver {version} (nvidia-pytriton) python backend, onnxruntime "
                         f"{onnxruntime.__version__} CPUExecutionProvider, loopback",
                 machine=f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}")
    return stats

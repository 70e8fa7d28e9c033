"""A real tritonserver (the nvidia-pytriton wheel's) serving the tiny pipeline's CPU repository
on 127.0.0.1: exact answers over HTTP and gRPC, a bounded load test, bad requests, clean stops.
Every server started here is stopped, also when a test fails."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from helpers import random_histories
from onerec_trt.errors import UserError
from onerec_trt.graphs import make_session
from onerec_trt.triton import (
    LoadTestOptions,
    RepositoryOptions,
    ServerOptions,
    TritonClient,
    TritonServer,
    export_repository,
    load_test,
)
from onerec_trt.triton.loadtest import format_stats, same_result
from onerec_trt.triton.server import free_port

S, ITEMS, MAX_BATCH = 20, 40, 16
OUTPUTS = ("items", "scores", "codes")


def _leftovers(repo: Path) -> list[str]:
    """Command lines of live processes that mention the repository (server or python stubs)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(repo) in text and int(cmdline.parent.name) != os.getpid():
            found.append(text)
    return found


@pytest.fixture(scope="module")
def repo(tiny_pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("triton") / "repo"
    export_repository(RepositoryOptions(
        model=str(tiny_pipeline / "model"), onnx=str(tiny_pipeline / "onnx"), out=str(out),
        ab=True, max_batch_size=MAX_BATCH, instances=1, threads=1), log=lambda *_: None)
    return out.resolve()


@pytest.fixture(scope="module")
def pool(tiny_pipeline):
    """Histories and the direct ONNX Runtime runner's answers, per public model."""
    hist = random_histories(96, S, ITEMS, seed=11).numpy()
    graphs = {"onerec": tiny_pipeline / "fp8" / "fp8.cpu.onnx",
              "onerec_bf16": tiny_pipeline / "onnx" / "reference.cpu.onnx"}
    expected = {name: dict(zip(OUTPUTS, make_session(g, threads=1).run(list(OUTPUTS), {
        "history": hist}), strict=True)) for name, g in graphs.items()}
    return hist, expected


@pytest.fixture(scope="module")
def server(repo, tmp_path_factory):
    log = tmp_path_factory.mktemp("log") / "tritonserver.log"  # kept for the failure message
    srv = TritonServer(ServerOptions(repo=str(repo), http_port=0, grpc_port=0, metrics_port=0,
                                     log=str(log)))
    srv.start()
    try:
        yield srv
    finally:
        code = srv.stop()
    assert code == 0, srv.log_tail()
    assert not _leftovers(repo)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) with a listening socket on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_the_server_listens_on_loopback_only(server):
    assert re.fullmatch(r"\d+\.\d+\.\d+", server.version())  # the wheel's tritonserver
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, ::ffff:127.0.0.1
    for name, port in server.ports.items():
        found = _listening_addresses(port)
        assert found and found <= loopback, (name, found)


def _urls(server):
    return {"http": server.http_url, "grpc": server.grpc_url}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_answers_equal_the_direct_onnxruntime_runner(server, pool, protocol):
    hist, expected = pool
    for model in ("onerec", "onerec_bf16"):
        with TritonClient(protocol, _urls(server)[protocol], model) as client:
            for start, size in ((0, 1), (1, 16), (17, 7), (24, 16), (40, 16), (56, 16)):
                rows = slice(start, start + size)
                got = client.infer(hist[rows])
                want = {k: v[rows] for k, v in expected[model].items()}
                assert same_result(got, want), (model, protocol, start)
    # the two precisions are different graphs: A/B routing really serves two models
    assert not np.array_equal(expected["onerec"]["scores"], expected["onerec_bf16"]["scores"])


def _bad_requests(hist):
    good = hist[:2].copy()
    above, negative, right = good.copy(), good.copy(), np.zeros_like(good)
    above[1, -1] = ITEMS + 1
    negative[0, -1] = -3
    right[:, :3] = [5, 6, 7]
    return [
        ("wrong dtype", good.astype(np.int32), "INT32", "expects 'INT64'"),
        ("wrong rank", good[:, None, :], "INT64", "unexpected shape"),
        ("wrong length", np.pad(good, ((0, 0), (1, 0))), "INT64", "unexpected shape"),
        ("id above the catalogue", above, "INT64", "row 1: item id 41 is outside the catalogue"),
        ("negative id", negative, "INT64", "item id -3 is outside the catalogue"),
        ("batch above max", hist[:MAX_BATCH + 1], "INT64", f"must be <= {MAX_BATCH}"),
        ("all padding", np.zeros_like(good), "INT64", "row 0: the history is all padding"),
        ("right-padded", right, "INT64", "histories are left-padded"),
    ]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_requests_get_clear_errors_and_the_next_request_is_right(server, pool, protocol):
    hist, expected = pool
    want = {k: v[:3] for k, v in expected["onerec"].items()}
    with TritonClient(protocol, _urls(server)[protocol], "onerec") as client:
        for case, history, dtype, message in _bad_requests(hist):
            with pytest.raises(InferenceServerException) as err:
                client.infer(history, dtype=dtype)
            assert message in err.value.message(), case
            status = str(err.value.status())
            assert "400" in status or "INVALID_ARGUMENT" in status, (case, status)
            assert same_result(client.infer(hist[:3]), want), f"after {case}"


def test_load_test_with_bad_requests_alongside(server, pool, capsys):
    """8 clients x 100 requests of mixed batch sizes, HTTP and gRPC, while a ninth client keeps
    sending bad requests: zero errors and exact answers for the good ones."""
    hist, expected = pool
    bad, stop = [], threading.Event()

    def spoiler():
        with TritonClient("grpc", server.grpc_url, "onerec") as client:
            cases = _bad_requests(hist)
            while not stop.is_set():
                case, history, dtype, message = cases[len(bad) % len(cases)]
                try:
                    client.infer(history, dtype=dtype)
                    bad.append(f"{case}: accepted")
                except InferenceServerException as exc:
                    bad.append(None if message in exc.message() else f"{case}: {exc}")

    thread = threading.Thread(target=spoiler, daemon=True)
    thread.start()
    try:
        stats = load_test(_urls(server), "onerec", hist, expected["onerec"], LoadTestOptions(
            clients=8, requests=100, batch_sizes=[1, 4, 16, 2, 8, 3], time_limit_s=60))
    finally:
        stop.set()
        thread.join(30)
    with capsys.disabled():
        print(f"\n[tritonserver load test, tiny model, CPU] {format_stats(stats)}")
    assert stats["errors"] == 0, stats["error_examples"]
    assert stats["wrong_responses"] == 0
    assert stats["requests_ok"] == 800 and stats["by_protocol"] == {"grpc": 400, "http": 400}
    assert stats["latency_ms"]["p99"] >= stats["latency_ms"]["p50"] > 0
    assert len(bad) > 0 and [b for b in bad if b] == []


def _wait_for_line(proc, lines, pattern, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for line in lines:
            if match := re.search(pattern, line):
                return match
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in the output:\n{''.join(lines)}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serve_prints_endpoints_and_stops_cleanly(repo, pool, sig, tmp_path):
    hist, expected = pool
    repo = shutil.copytree(repo, tmp_path / "repo")  # its own: the module's server uses 'repo'
    proc = subprocess.Popen(
        [sys.executable, "-m", "onerec_trt.cli", "triton", "serve", "--repo", str(repo),
         "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        port = int(_wait_for_line(proc, lines, r"HTTP +http://127\.0\.0\.1:(\d+)").group(1))
        _wait_for_line(proc, lines, "stops it")
        with TritonClient("http", f"127.0.0.1:{port}", "onerec") as client:
            got = client.infer(hist[:4])
        assert same_result(got, {k: v[:4] for k, v in expected["onerec"].items()})
        proc.send_signal(sig)
        assert proc.wait(60) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    assert "tritonserver stopped (exit code 0)" in "".join(lines)
    with socket.socket() as sock:  # nothing listens there any more (TIME_WAIT is fine)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
    assert not _leftovers(repo)


def test_a_server_that_cannot_start_says_why_and_leaves_nothing(repo, tmp_path):
    repo = shutil.copytree(repo, tmp_path / "repo")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = TritonServer(ServerOptions(repo=str(repo), http_port=port,
                                            grpc_port=free_port(), metrics_port=free_port()))
        with pytest.raises(UserError, match="tritonserver exited with code") as err:
            server.start()
    assert str(port) in str(err.value) or "HTTP" in str(err.value)
    assert server.proc.poll() is not None and not _leftovers(repo)

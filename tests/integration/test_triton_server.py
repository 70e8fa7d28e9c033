"""A real tritonserver (the nvidia-pytriton wheel's) serving the tiny pipeline's CPU repository
on 127.0.0.1: exact answers over HTTP and gRPC, a bounded load test, bad requests, clean stops.
Every server started here is stopped, also when a test fails."""

import http.client
import json
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
from onerec_trt.triton.check import check_repository
from onerec_trt.triton.loadtest import format_stats, same_result
from onerec_trt.triton.server import free_port, repo_tag

S, ITEMS, MAX_BATCH = 20, 40, 16
OUTPUTS = ("items", "scores", "codes")


def _leftovers(repo: Path) -> list[str]:
    """Command lines of live processes that mention the repository (server or python stubs:
    tritonserver gets it through a link in a temporary folder named with ``repo_tag``)."""
    found, tag = [], repo_tag(repo)
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if (str(repo) in text or tag in text) and int(cmdline.parent.name) != os.getpid():
            found.append(text)
    return found


def test_leftovers_sees_a_running_server(repo, tmp_path):
    """The cleanup checks below would pass vacuously if they could not see a live server."""
    repo = shutil.copytree(repo, tmp_path / "repo")
    with TritonServer(ServerOptions(repo=str(repo), http_port=0, grpc_port=0, metrics_port=0)):
        running = _leftovers(repo)
        assert any("tritonserver" in c for c in running), running
        assert any("triton_python_backend_stub" in c for c in running), running
    assert not _leftovers(repo)


@pytest.fixture(scope="module")
def repo(tiny_pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("triton") / "repo"
    export_repository(RepositoryOptions(
        model=str(tiny_pipeline / "model"), onnx=str(tiny_pipeline / "onnx"), out=str(out),
        ab=True, max_batch_size=MAX_BATCH, instances=1, threads=1))
    return out.resolve()


@pytest.fixture(scope="module")
def pool(tiny_pipeline):
    """Histories and the direct ONNX Runtime session's answers, per public model."""
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
    # served as written: no __pycache__ beside model.py, every file as export wrote it
    assert check_repository(repo) == [] and not list(repo.rglob("__pycache__"))


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
def test_answers_equal_the_direct_onnxruntime_session(server, pool, protocol):
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
        assert proc.wait(60) == 128 + sig, "".join(lines)  # 143 / 130, as every command
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
        server = TritonServer(ServerOptions(repo=str(repo), http_port=0, grpc_port=port,
                                            metrics_port=free_port()))
        with pytest.raises(UserError, match="tritonserver exited with code") as err:
            server.start()
        assert str(port) in str(err.value) or "GRPC" in str(err.value).upper()
        assert server.proc.poll() is not None and not _leftovers(repo)
        # the public HTTP port is the gateway's: a busy one fails before tritonserver starts
        server = TritonServer(ServerOptions(repo=str(repo), http_port=port, grpc_port=0,
                                            metrics_port=0))
        with pytest.raises(UserError, match=f"HTTP port {port}"):
            server.start()
        assert server.proc is None and not _leftovers(repo)


def _post_raw(url: str, path: str, body: bytes, headers: dict | None = None,
              timeout: float = 30) -> tuple[int, bytes]:
    """A raw HTTP POST (no client library to tidy the request up); (status, body)."""
    host, port = url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", path, body=body,
                     headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _post(url: str, path: str, body: bytes, headers: dict | None = None) -> tuple[int, str]:
    """A raw HTTP POST; (status, error text)."""
    status, data = _post_raw(url, path, body, headers)
    try:
        return status, json.loads(data).get("error", "")
    except ValueError:
        return status, data.decode(errors="replace")


def _history_json(shape, data, datatype="INT64") -> bytes:
    return json.dumps({"inputs": [{"name": "history", "shape": shape, "datatype": datatype,
                                   "data": data}]}).encode()


def _shape_twice(first, second, row) -> bytes:
    """One input whose key "shape" appears twice (json.dumps cannot write that)."""
    return (f'{{"inputs": [{{"name": "history", "shape": {first}, "shape": {second}, '
            f'"datatype": "INT64", "data": {row}}}]}}').encode()


def _hostile_requests(hist):
    row = [int(x) for x in hist[0]]
    binary = hist[:2].astype(np.int64).tobytes()
    header = json.dumps({"inputs": [{"name": "history", "shape": [2, S], "datatype": "INT64",
                                     "parameters": {"binary_data_size": len(binary)}}]}).encode()
    short = json.dumps({"inputs": [{"name": "history", "shape": [2, S], "datatype": "INT64",
                                    "parameters": {"binary_data_size": 8}}]}).encode()
    return [  # (case, path, body, headers, status, message)
        # tritonserver keeps the first of two equal keys, Python's json the last: this one
        # passed the gateway with [1, S] and aborted tritonserver with 1e9 rows
        ("shape twice, 1e9 rows first", "/v2/models/onerec/infer",
         _shape_twice([1000000000, 200], [1, S], row), {}, 400, "'shape' appears twice"),
        ("shape twice, 1e9 rows last", "/v2/models/onerec/infer",
         _shape_twice([1, S], [1000000000, 200], row), {}, 400, "'shape' appears twice"),
        ("an id past int64 (500 from tritonserver 2.51)", "/v2/models/onerec/infer",
         _history_json([1, S], row[:-1] + [2 ** 63]), {}, 400,
         f"INT64 value {2 ** 63} is outside"),
        ("1e9 rows (aborted tritonserver 2.51)", "/v2/models/onerec/infer",
         _history_json([1000000000, 200], [1]), {}, 400, "declares more elements"),
        ("1e7 rows (12 GB in tritonserver 2.51)", "/v2/models/onerec/infer",
         _history_json([10000000, 200], [1]), {}, 400, "declares more elements"),
        ("1e5 rows on the public bf16 model", "/v2/models/onerec_bf16/versions/1/infer",
         _history_json([100000, S], [1]), {}, 400, "declares more elements"),
        ("a negative dim", "/v2/models/onerec/infer", _history_json([-1, S], row), {}, 400,
         "negative dimension"),
        ("bad JSON", "/v2/models/onerec/infer", b'{"inputs": [', {}, 400, "not valid JSON"),
        ("not an object", "/v2/models/onerec/infer", b"[1, 2]", {}, 400, "JSON object"),
        ("JSON nested 30,000 deep", "/v2/models/onerec/infer", b"[" * 30000 + b"]" * 30000, {},
         400, "nested too deeply"),
        ("shape and data disagree", "/v2/models/onerec/infer", _history_json([2, S], row), {},
         400, f"needs {2 * S} values, 'data' holds {S}"),
        ("string data", "/v2/models/onerec/infer", _history_json([1, S], [str(x) for x in row]),
         {}, 400, "INT64 data holds JSON str values"),
        ("float data", "/v2/models/onerec/infer", _history_json([1, S], [0.5] * S), {}, 400,
         "INT64 data holds JSON float values"),
        ("binary size and shape disagree", "/v2/models/onerec/infer", short + binary,
         {"Inference-Header-Content-Length": str(len(short))}, 400, "needs 320 bytes"),
        ("binary part shorter than declared", "/v2/models/onerec/infer", header + binary[:-8],
         {"Inference-Header-Content-Length": str(len(header))}, 400, "the body carries"),
        ("header length past the body", "/v2/models/onerec/infer", header,
         {"Inference-Header-Content-Length": str(len(header) + 1)}, 400, "does not fit"),
        ("a body larger than any request", "/v2/models/onerec/infer", b" " * 1_000_000, {}, 413,
         "larger than any request"),
        ("the generate model, past the guard", "/v2/models/onerec_fp8_generate/infer",
         _history_json([1, S], row), {}, 404, "not served here"),
        ("the bf16 generate model", "/v2/models/onerec_bf16_generate/versions/1/infer",
         _history_json([1, S], row), {}, 404, "not served here"),
        ("the guard", "/v2/models/onerec_guard/infer", _history_json([1, S], row), {}, 404,
         "not served here"),
        ("unloading a model", "/v2/repository/models/onerec/unload", b"{}", {}, 404,
         "not served here"),
        ("registering shared memory", "/v2/systemsharedmemory/region/x/register", b"{}", {}, 404,
         "not served here"),
    ]


def test_hostile_http_requests_get_400_and_the_server_stays_healthy(server, pool):
    """What crashed or bloated tritonserver 2.51 over HTTP is answered by the gateway, and the
    models behind the public ones are not reachable over HTTP; then everything still works."""
    hist, expected = pool
    for case, path, body, headers, status, message in _hostile_requests(hist):
        got_status, error = _post(server.http_url, path, body, headers)
        assert (got_status, message in error) == (status, True), (case, got_status, error)
        assert server.proc.poll() is None, f"tritonserver died after: {case}"
    want = {k: v[:2] for k, v in expected["onerec"].items()}
    for protocol in ("http", "grpc"):
        with TritonClient(protocol, _urls(server)[protocol], "onerec") as client:
            assert client.client.is_server_ready() and client.client.is_model_ready("onerec")
            assert same_result(client.infer(hist[:2]), want), protocol
    # the gateway costs little: Nagle's algorithm with delayed ACKs once added 40 ms to each
    with TritonClient("http", server.http_url, "onerec") as client:
        times = []
        for _ in range(9):
            start = time.perf_counter()
            client.infer(hist[:1])
            times.append(time.perf_counter() - start)
    assert sorted(times)[4] < 0.035, times
    # a raw JSON request (not binary, as tritonclient sends) is answered right through it
    status, _ = _post(server.http_url, "/v2/models/onerec/infer",
                      _history_json([2, S], hist[:2].tolist()))
    assert status == 200


def _infer_outputs(data: bytes, want: dict) -> dict:
    """A JSON infer response's outputs as arrays of the expected dtypes."""
    outputs = {o["name"]: o for o in json.loads(data)["outputs"]}
    return {name: np.array(outputs[name]["data"], dtype=w.dtype).reshape(outputs[name]["shape"])
            for name, w in want.items() if name in outputs}


def test_gateway_answers_100_concurrent_clients_without_resets(server, pool):
    """100 clients connect at once (a barrier) and each sends one request through the gateway:
    every one answered exactly, in bounded time. With socketserver's listen backlog of 5, 4-29%
    of them got ConnectionResetError (straight to tritonserver: 100/100)."""
    hist, expected = pool
    clients, results = 100, {}
    barrier = threading.Barrier(clients)

    def client(i: int) -> None:
        body = _history_json([1, S], hist[i % len(hist)][None].tolist())
        try:
            barrier.wait(60)
            results[i] = _post_raw(server.http_url, "/v2/models/onerec/infer", body, timeout=60)
        except Exception as exc:  # a reset, a timeout: what the test counts
            results[i] = exc

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, 90 - (time.monotonic() - start)))
    assert not any(t.is_alive() for t in threads), "a client got no answer in 90 s"
    failed = {i: r for i, r in results.items() if not isinstance(r, tuple) or r[0] != 200}
    assert not failed, f"{len(failed)} of {clients} failed, e.g. {next(iter(failed.values()))}"
    for i, (_, data) in results.items():
        row = slice(i % len(hist), i % len(hist) + 1)
        want = {k: v[row] for k, v in expected["onerec"].items()}
        got = _infer_outputs(data, want)
        # items and codes exact; scores within float32 rounding (batches formed under this
        # load have other sizes than any the direct session ran: 1 ulp apart was seen)
        assert same_result(got, {k: want[k] for k in ("items", "codes")}), i
        np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-6)
    assert server.proc.poll() is None and server.is_ready()


@pytest.mark.parametrize("tamper", ["model.py edited", "__pycache__ planted"])
def test_serve_refuses_a_tampered_repository(repo, tmp_path, cli, tamper):
    """The python backend runs the repository's model.py: one edited after export (or bytecode
    that Python would run instead) is refused before anything starts, as 'triton check' sees."""
    repo = shutil.copytree(repo, tmp_path / "repo")
    guard = repo / "onerec_guard" / "1"
    if tamper == "model.py edited":
        with open(guard / "model.py", "a") as f:
            f.write("\nimport os; os.system('echo tampered')\n")
        want = "onerec_guard/1/model.py: sha256 differs"
    else:
        (guard / "__pycache__").mkdir(exist_ok=True)
        (guard / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0" * 16)
        want = "onerec_guard/1/__pycache__/model.cpython-311.pyc: not written by export"
    with pytest.raises(UserError, match="fails its check, not served") as err:
        TritonServer(ServerOptions(repo=str(repo), http_port=0, grpc_port=0, metrics_port=0))
    assert want in str(err.value)
    result = cli("triton", "serve", "--repo", repo, "--http-port", "0", "--grpc-port", "0",
                 "--metrics-port", "0")
    assert result.returncode == 2 and want in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not _leftovers(repo)


def test_grpc_cannot_unload_models_or_register_shared_memory(server, pool):
    """Model control and shared memory need a header only the serving process knows."""
    import tritonclient.grpc as grpc_client

    hist, expected = pool
    client = grpc_client.InferenceServerClient(server.grpc_url)
    try:
        with pytest.raises(InferenceServerException, match="restricted|denied|header"):
            client.unload_model("onerec")
        with pytest.raises(InferenceServerException, match="restricted|denied|header"):
            client.register_system_shared_memory("x", "/onerec-test-none", 8)
        assert client.is_model_ready("onerec")
    finally:
        client.close()
    with TritonClient("grpc", server.grpc_url, "onerec") as c:
        assert same_result(c.infer(hist[:1]), {k: v[:1] for k, v in expected["onerec"].items()})


@pytest.mark.parametrize("generate, public", [("onerec_fp8_generate", "onerec"),
                                              ("onerec_bf16_generate", "onerec_bf16")])
def test_a_generate_model_called_directly_over_grpc_applies_the_guards_rules(
        server, pool, generate, public):
    """gRPC reaches every loaded model (Triton has no per-model access control): the CPU
    generate model checks requests itself, so calling it past the guard gets the same answers."""
    hist, expected = pool
    with TritonClient("grpc", server.grpc_url, generate) as client:
        for case, history, dtype, message in _bad_requests(hist):
            if "above" in case or "negative" in case or "padding" in case or "padded" in case:
                with pytest.raises(InferenceServerException) as err:
                    client.infer(history, dtype=dtype)
                assert message in err.value.message(), case
                assert "INVALID_ARGUMENT" in str(err.value.status()), case
        assert same_result(client.infer(hist[:5]),
                           {k: v[:5] for k, v in expected[public].items()})


def test_serves_a_repository_whose_path_has_spaces_and_non_ascii(repo, pool, tmp_path):
    hist, expected = pool
    odd = shutil.copytree(repo, tmp_path / "with space" / "répo ünï")
    with TritonServer(ServerOptions(repo=str(odd), http_port=0, grpc_port=0, metrics_port=0,
                                    ready_timeout_s=60)) as srv:
        for protocol in ("http", "grpc"):
            with TritonClient(protocol, _urls(srv)[protocol], "onerec") as client:
                got = client.infer(hist[:3])
            assert same_result(got, {k: v[:3] for k, v in expected["onerec"].items()})
    assert srv.proc.returncode == 0 and not _leftovers(odd)


@pytest.mark.parametrize("port", [99999, -1, 65536])
def test_ports_outside_0_to_65535_are_refused_by_the_library(repo, port):
    with pytest.raises(UserError, match=f"--http-port {port} is not a port number"):
        TritonServer(ServerOptions(repo=str(repo), http_port=port))


def test_load_refuses_batch_sizes_it_cannot_send_before_starting_anything(repo):
    from onerec_trt.triton.loadtest import load_repository

    for sizes, message in (([0], "--batch-sizes must be positive integers"),
                           ([4, MAX_BATCH + 1], f"above the repository's max_batch_size "
                                                f"{MAX_BATCH}")):
        with pytest.raises(UserError, match=message):
            load_repository(LoadTestOptions(repo=str(repo), batch_sizes=sizes))

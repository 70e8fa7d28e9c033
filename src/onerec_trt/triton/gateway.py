"""The public HTTP endpoint of ``triton serve``: a small validating proxy in front of
tritonserver's own HTTP endpoint (which then listens on another 127.0.0.1 port).

Why: tritonserver 2.51 (the newest the registry has here) parses an HTTP/JSON infer request by
allocating what its declared ``shape`` asks for before looking at the data, so one request with
``"shape": [1000000000, 200]`` aborts the server (``std::length_error``) and ``[10000000, 200]``
makes it allocate about 12 GB; bad JSON, data that does not match its shape and string data get
500. gRPC is not affected. This proxy answers 400 to all of those before tritonserver sees them,
and forwards only the read-only and inference endpoints of the public models: the generate and
guard models behind them, model loading and unloading, shared-memory registration, tracing and
logging settings are not reachable over the public HTTP port.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

# bytes per element of Triton's fixed-size datatypes (BYTES has no fixed size)
ITEMSIZE = {"BOOL": 1, "UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8, "INT8": 1,
            "INT16": 2, "INT32": 4, "INT64": 8, "FP16": 2, "BF16": 2, "FP32": 4, "FP64": 8}
DATATYPES = {*ITEMSIZE, "BYTES"}
HEADER_LENGTH = "Inference-Header-Content-Length"  # Triton's binary tensor extension
FORWARDED_REQUEST_HEADERS = ("Content-Type", HEADER_LENGTH, "Accept-Encoding")
FORWARDED_RESPONSE_HEADERS = ("Content-Type", HEADER_LENGTH, "Content-Encoding")
MAX_NESTING = 8  # JSON data may be nested row by row; deeper is not a tensor of ours
MAX_DISCARD = 64 << 20  # a refused body up to this size is read before the answer
LISTEN_BACKLOG = 1024  # connections the kernel queues before the server accepts them
IDLE_TIMEOUT_S = 300.0  # a keep-alive connection with no request for this long is closed
_MODEL = r"/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[0-9]+))?"
INFER = re.compile(_MODEL + r"/infer")
READ_ONLY = re.compile(_MODEL + r"(?:/ready|/config|/stats)?")
SERVER_READ_ONLY = {"/v2", "/v2/health/live", "/v2/health/ready"}


class Rejected(Exception):
    """A request the proxy answers itself, with ``status`` and the message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What a plausible request to the public models may declare."""

    public: frozenset[str]  # the only models reachable
    max_elements: int  # per input: max_batch_size x the largest input's per-row elements
    max_body: int  # bytes of one request body

    @classmethod
    def for_contract(cls, public: list[str], contract: dict, max_batch: int) -> Limits:
        per_row = max(math.prod(t["dims"]) for t in contract["inputs"])
        # twice the largest valid request: near misses (one row too many, a wrong length) still
        # reach tritonserver, which names the mistake precisely; nothing larger does
        elements = 2 * max_batch * per_row
        # JSON spells an int64 in at most 20 characters plus a separator; headers are small
        return cls(frozenset(public), elements, 64 * 1024 + elements * 24)


def _scalars(data, out: list, depth: int = 0) -> list:
    """The scalars of (nested lists of) JSON ``data``, appended to ``out`` in order."""
    if not isinstance(data, list):
        out.append(data)
        return out
    if depth >= MAX_NESTING:
        raise Rejected(f"data is nested deeper than {MAX_NESTING} levels")
    for item in data:
        _scalars(item, out, depth + 1)
    return out


def _int_range(datatype: str) -> tuple[int, int]:
    """The values an INTn / UINTn tensor element holds."""
    bits = 8 * ITEMSIZE[datatype]
    if datatype.startswith("U"):
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _check_range(name: str, datatype: str, values: list) -> None:
    """Python's JSON keeps any integer; tritonserver answered 500 "Unable to parse 'data'" to
    one past its datatype's range."""
    if not values or not datatype.startswith(("INT", "UINT")):
        return
    lo, hi = _int_range(datatype)
    smallest, largest = min(values), max(values)
    if smallest < lo or largest > hi:
        bad = smallest if smallest < lo else largest
        raise Rejected(f"input '{name}': {datatype} value {bad} is outside {lo}..{hi}")


def _check_kinds(name: str, datatype: str, kinds: set[type]) -> None:
    """JSON values must be what the datatype holds: no strings for numbers, no floats for ints."""
    if datatype == "BYTES":
        allowed = {str}
    elif datatype == "BOOL":
        allowed = {bool}
    elif datatype.startswith(("INT", "UINT")):
        allowed = {int}
    else:
        allowed = {int, float}
    if not kinds <= allowed:
        found = ", ".join(sorted(k.__name__ for k in kinds - allowed))
        raise Rejected(f"input '{name}': {datatype} data holds JSON {found} values")


def _shape(name: str, shape, limits: Limits) -> int:
    """The element count ``shape`` declares; implausible shapes are refused."""
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise Rejected(f"input '{name}': shape must be a list of integers, got {shape!r}")
    if any(d < 0 for d in shape):
        raise Rejected(f"input '{name}': negative dimension in shape {shape}")
    count = math.prod(shape)
    if count > limits.max_elements or any(d > limits.max_elements for d in shape):
        raise Rejected(f"input '{name}': shape {shape} declares more elements than any request "
                       f"to these models may hold ({limits.max_elements})")
    return count


def _check_input(tensor, limits: Limits) -> int:
    """Check one entry of ``inputs``; return the bytes it has in the binary part."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise Rejected("each entry of 'inputs' must be an object with a 'name'")
    name, datatype = tensor["name"], tensor.get("datatype")
    if datatype not in DATATYPES:
        raise Rejected(f"input '{name}': unknown datatype {datatype!r}")
    count = _shape(name, tensor.get("shape"), limits)
    params = tensor.get("parameters") or {}
    if not isinstance(params, dict):
        raise Rejected(f"input '{name}': 'parameters' must be an object")
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise Rejected(f"input '{name}': binary_data_size must be a byte count")
        if "data" in tensor:
            raise Rejected(f"input '{name}': both 'data' and binary_data_size")
        if datatype in ITEMSIZE and size != count * ITEMSIZE[datatype]:
            raise Rejected(f"input '{name}': shape {tensor['shape']} of {datatype} needs "
                           f"{count * ITEMSIZE[datatype]} bytes, binary_data_size is {size}")
        return size
    if "data" not in tensor:
        raise Rejected(f"input '{name}': no 'data' and no binary_data_size")
    values = _scalars(tensor["data"], [])
    if len(values) != count:
        raise Rejected(f"input '{name}': shape {tensor['shape']} needs {count} values, "
                       f"'data' holds {len(values)}")
    _check_kinds(name, datatype, {type(v) for v in values})
    _check_range(name, datatype, values)
    return 0


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose keys all differ. Python keeps the last of two equal keys,
    tritonserver the first: ``"shape"`` given twice passed this check with one and reached
    tritonserver with the other (a 1e9-row shape aborted it)."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise Rejected(f"the key {key!r} appears twice in one JSON object")
        seen.add(key)
    return dict(pairs)


def _no_constant(name: str):
    raise Rejected(f"the request's JSON holds {name}, which JSON does not allow")


def parse_json(header: bytes):
    """The request's JSON header, parsed as strictly as tritonserver does: UTF-8 only (Python
    would also guess UTF-16 and UTF-32), no NaN or Infinity, no key twice in one object."""
    try:
        return json.loads(header.decode("utf-8"), object_pairs_hook=_unique_keys,
                          parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(f"the request is not valid JSON: {exc}") from None
    except RecursionError:
        raise Rejected("the request's JSON is nested too deeply") from None


def check_infer(body: bytes, header_length: str | None, limits: Limits) -> None:
    """Raise ``Rejected`` unless ``body`` is a well-formed, plausible infer request."""
    if header_length is None:
        header, binary = body, b""
    else:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise Rejected(f"{HEADER_LENGTH} {header_length!r} does not fit the body "
                           f"({len(body)} bytes)")
        header, binary = body[:int(header_length)], body[int(header_length):]
    request = parse_json(header)
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise Rejected("the request must be a JSON object with a list 'inputs'")
    outputs = request.get("outputs", [])
    if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
        raise Rejected("'outputs' must be a list of objects with a 'name'")
    names = [t.get("name") if isinstance(t, dict) else None for t in request["inputs"]]
    if len(set(names)) != len(names):
        raise Rejected("an input is given twice")
    binary_total = sum(_check_input(t, limits) for t in request["inputs"])
    if binary_total != len(binary):
        raise Rejected(f"the inputs declare {binary_total} bytes of binary data, the body "
                       f"carries {len(binary)}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as tritonclient expects
    timeout = IDLE_TIMEOUT_S
    server: _GatewayServer

    def log_message(self, *args) -> None:  # no per-request lines on the console
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle's algorithm and the
        # peer's delayed ACK add 40 ms to every response
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstream: http.client.HTTPConnection | None = None
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.upstream is not None:
                self.upstream.close()
            self.server.track(self.connection, add=False)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve(body=None)

    def do_POST(self) -> None:  # noqa: N802
        try:
            body = self._read_body()
        except Rejected as exc:
            self.close_connection = True  # the unread rest of the body would be the next request
            self._error(exc.status, str(exc))
            return
        self._serve(body)

    def _serve(self, body: bytes | None) -> None:
        path = self.path.split("?", 1)[0]
        try:
            self._route(unquote(path), body)
        except Rejected as exc:
            self._error(exc.status, str(exc))
            return
        self._forward(body)

    def _route(self, path: str, body: bytes | None) -> None:
        limits = self.server.limits
        if body is None:
            if path in SERVER_READ_ONLY:
                return
            match = READ_ONLY.fullmatch(path)
        else:
            match = INFER.fullmatch(path)
        if match is None:
            raise Rejected(f"{self.command} {path} is not served here", 404)
        if match["model"] not in limits.public:
            raise Rejected(f"model '{match['model']}' is not served here; "
                           f"public models: {', '.join(sorted(limits.public))}", 404)
        if body is not None:
            check_infer(body, self.headers.get(HEADER_LENGTH), limits)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "identity").lower() != "identity":
            raise Rejected("send the body with a Content-Length (no chunked encoding)", 411)
        if self.headers.get("Content-Encoding", "identity").lower() != "identity":
            raise Rejected("compressed requests are not accepted here", 415)
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise Rejected("a Content-Length is required", 411)
        if int(length) > self.server.limits.max_body:
            self._discard(int(length))  # so that the client reads the answer, not a reset
            raise Rejected(f"the request body ({length} bytes) is larger than any request to "
                           f"these models may be ({self.server.limits.max_body} bytes)", 413)
        body = self.rfile.read(int(length))
        if len(body) != int(length):
            raise Rejected("the body ended before its Content-Length", 400)
        return body

    def _discard(self, length: int, chunk: int = 1 << 16) -> None:
        """Read and drop a refused body, up to MAX_DISCARD bytes (the connection is closed
        after the answer anyway)."""
        left = min(length, MAX_DISCARD)
        while left > 0:
            got = self.rfile.read(min(chunk, left))
            if not got:
                return
            left -= len(got)

    def _forward(self, body: bytes | None) -> None:
        headers = {k: self.headers[k] for k in FORWARDED_REQUEST_HEADERS if k in self.headers}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        try:
            response = self._upstream_request(headers, body)
        except OSError as exc:
            self._error(502, f"tritonserver did not answer: {exc}")
            return
        data = response.read()
        self.send_response(response.status)
        for key in FORWARDED_RESPONSE_HEADERS:
            if response.getheader(key) is not None:
                self.send_header(key, response.getheader(key))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _upstream_request(self, headers: dict, body: bytes | None) -> http.client.HTTPResponse:
        """One keep-alive connection to tritonserver per client connection; a connection
        tritonserver closed meanwhile is opened again once."""
        for attempt in (0, 1):
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(*self.server.upstream, timeout=None)
                self.upstream.connect()
                self.upstream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self.upstream.request(self.command, self.path, body=body, headers=headers)
                return self.upstream.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.upstream.close()
                self.upstream = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _error(self, status: int, message: str) -> None:
        data = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class _GatewayServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: with 100 clients connecting at once, 4-29%
    # of them got ConnectionResetError and no answer (the kernel caps this at somaxconn)
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], limits: Limits, upstream: tuple[str, int]):
        super().__init__(address, _Handler)
        self.limits, self.upstream = limits, upstream
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def handle_error(self, request, client_address) -> None:
        """One line on stderr, no traceback: a client that hung up is not the server's fault."""
        import sys

        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError | TimeoutError):
            print(f"triton gateway: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    def track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            (self._open.add if add else self._open.discard)(sock)

    def close_connections(self, timeout_s: float = 5.0) -> None:
        """Close every client connection and wait until their handlers closed their own
        connections to tritonserver (which otherwise delays its shutdown)."""
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        deadline = time.monotonic() + timeout_s
        while self._open and time.monotonic() < deadline:
            time.sleep(0.02)


class Gateway:
    """The proxy on ``host:port`` (0: a free port) in front of tritonserver's ``upstream``."""

    def __init__(self, host: str, port: int, limits: Limits):
        try:
            self._server = _GatewayServer((host, port), limits, (host, 0))
        except OSError as exc:
            raise OSError(f"HTTP port {port}: {exc.strerror}") from None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self, upstream_port: int) -> None:
        self._server.upstream = (self._server.upstream[0], upstream_port)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.1}, name="triton-gateway")
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
            self._thread = None
        self._server.close_connections()
        self._server.server_close()

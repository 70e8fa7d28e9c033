"""A local ``tritonserver`` for a CPU repository: the binary inside the ``nvidia-pytriton`` wheel
(Triton 2.51 with only the python backend), bound to 127.0.0.1, started and stopped cleanly.

Recipe (FACTS): a backend folder ``python/`` holding links to the wheel's
``libtriton_python.so``, ``triton_python_backend_utils.py`` and the python stub built for this
interpreter's version; this interpreter's ``bin/`` first on PATH (the stub finds site-packages
through the ``python3`` on PATH); explicit model control; ``--exit-on-error`` (a model that fails
to load stops the server, and the error names it); a per-server shared-memory prefix so several
servers can run on one machine.

The public HTTP port is ``gateway.Gateway``, a validating proxy; tritonserver's own HTTP
endpoint listens on another loopback port that only the proxy uses (see gateway.py for why).
Model loading, shared memory, tracing and logging need a header with a key made per start, over
gRPC and tritonserver's own HTTP port alike (the key is on tritonserver's command line: it
guards the ports, not the machine's process table).

``triton serve`` refuses a repository that ``triton check`` finds a problem in (a model.py
edited after export: the python backend runs it). tritonserver is then given the repository's
model folders rebuilt in a temporary folder with a plain name (``shadow_repository``: real
folders, links to the files): the python backend starts its stub through a shell command line
that splits a model path at spaces (the stub then dies with ``std::invalid_argument: stol`` and
the server waits forever), and the stub writes ``__pycache__`` beside every model.py it loads.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from onerec_trt.errors import user_error
from onerec_trt.layout import DEFAULT_RUN
from onerec_trt.reports import read_stage
from onerec_trt.triton.contract import RepositoryReport
from onerec_trt.triton.gateway import Gateway, Limits

HOST = "127.0.0.1"  # never anything else: the server is for this machine only
PORTS = ("http", "grpc", "metrics")
# what clients never need: behind a header with a key made per start
RESTRICTED = "model-repository,shared-memory,trace,logging"
PLAIN_PATH = re.compile(r"[A-Za-z0-9_./+-]+")  # what the python stub's command line survives


@dataclass
class ServerOptions:
    repo: str = str(DEFAULT_RUN.triton)
    http_port: int = 8000  # 0: pick a free port
    grpc_port: int = 8001
    metrics_port: int = 8002
    ready_timeout_s: float = 120.0
    exit_timeout_s: int = 10  # how long in-flight requests may finish after SIGTERM
    log: str | None = None  # tritonserver's log file (default: a temporary one)
    verbose: bool = False


def check_port(port: int, what: str) -> int:
    """A TCP port number (0: pick a free one)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise user_error(f"--{what}-port {port} is not a port number",
                         "use 1..65535, or 0 to pick a free port")
    return port


def repo_tag(repo: str | Path) -> str:
    """A plain name for a repository path: in the server's temporary folder name, hence in the
    command lines of tritonserver and its python stubs."""
    import hashlib

    return hashlib.sha256(str(Path(repo).resolve()).encode()).hexdigest()[:12]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def tritonserver_root() -> Path:
    """The ``tritonserver`` folder of the nvidia-pytriton wheel (found without importing it)."""
    spec = importlib.util.find_spec("pytriton")
    root = Path(spec.submodule_search_locations[0]) / "tritonserver" if spec else None
    if root is None or not (root / "bin" / "tritonserver").is_file():
        raise user_error("tritonserver not found",
                         "pip install nvidia-pytriton (its wheel bundles tritonserver with the "
                         "python backend)")
    return root


def make_backend_folder(root: Path, into: Path) -> Path:
    """``into/python/`` with links to the python backend and this Python's stub."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise user_error(f"nvidia-pytriton has no python backend stub for Python {version}")
    python = into / "python"
    python.mkdir(parents=True)
    for source in (root / "backends" / "python" / "libtriton_python.so",
                   root / "backends" / "python" / "triton_python_backend_utils.py", stub):
        (python / source.name).symlink_to(source)
    return into


def read_repository(repo: str | Path) -> RepositoryReport:
    info = read_stage(repo, RepositoryReport, flag="--repo")
    if info.variant != "cpu":
        raise user_error(f"{repo} is a GPU repository (TensorRT engines)",
                         "the local tritonserver has only the python backend; serve a GPU "
                         "repository with NVIDIA's Triton container (see docs/triton.md), or "
                         "export a CPU repository (without --engine)")
    return info


def verify_repository(repo: str | Path) -> None:
    """Refuse a repository that ``triton check`` finds a problem in: the python backend runs
    the repository's ``model.py`` files, so one edited after export (its sha256 differs from
    manifest.json's) is never started; a file export did not write (``__pycache__`` included:
    Python would run its bytecode instead of the checked source) is refused too."""
    from onerec_trt.triton.check import check_repository

    try:
        problems = check_repository(repo)
    except ImportError:
        raise user_error("checking config.pbtxt needs Triton's model_config_pb2",
                         "pip install 'tritonclient[grpc]'") from None
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise user_error(f"{repo} fails its check, not served: {problems[0]}{more}",
                         f"'onerec-trt triton check --repo {repo}' lists every problem; "
                         "export the repository again")


def shadow_repository(repo: Path, into: Path) -> Path:
    """The model folders of ``repo`` rebuilt under ``into``: real folders, copies of the
    (verified) Python sources and configs, links to the rest (graphs, their data). The python
    stub ignores PYTHONDONTWRITEBYTECODE (its interpreter is isolated from the environment) and
    writes ``__pycache__`` beside each source it loads (with links to the sources, some still
    went into the repository), which now lands here; a ``__pycache__`` in the repository is
    never reached."""
    for config in sorted(repo.glob("*/config.pbtxt")):
        folder = into / config.parent.name
        (folder / "1").mkdir(parents=True)
        shutil.copyfile(config, folder / config.name)
        for file in sorted((config.parent / "1").iterdir()):
            if file.suffix == ".py":
                shutil.copyfile(file, folder / "1" / file.name)
            elif file.is_file():
                (folder / "1" / file.name).symlink_to(file.resolve())
    return into


def _die_with_parent() -> None:  # runs in the child before exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: never outlive the process that started us


def _live_group_members(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that have not yet exited (zombies do not count)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == pgid and state not in ("Z", "X"):
            found.append(int(stat.parent.name))
    return found


def _wait_group_gone(pgid: int, timeout_s: float = 10.0) -> None:
    """SIGKILL is asynchronous: wait until the python stubs it was sent to have exited, so
    that nothing of the server outlives ``stop()``."""
    deadline = time.monotonic() + timeout_s
    while _live_group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)


class TritonServer:
    """``with TritonServer(opts) as server:`` starts, waits until every model is ready, and
    stops the server (SIGTERM; SIGKILL to its process group unless it then exits cleanly)."""

    def __init__(self, opts: ServerOptions, cancelled: Callable[[], bool] = lambda: False):
        self.opts = opts
        self.cancelled = cancelled  # checked while waiting for the server to be ready
        for kind in PORTS:
            check_port(getattr(opts, f"{kind}_port"), kind)
        self.info = read_repository(opts.repo)
        verify_repository(opts.repo)
        self.proc: subprocess.Popen | None = None
        self.gateway: Gateway | None = None
        self._tmp: Path | None = None
        self._admin_key = secrets.token_hex(16)
        self.ports = {k: getattr(opts, f"{k}_port") or free_port() for k in ("grpc", "metrics")}
        self.ports["http"] = opts.http_port  # the gateway binds it (0: a free one)
        self.ports["triton_http"] = free_port()  # tritonserver's own, used by the gateway only

    @property
    def http_url(self) -> str:
        """The public HTTP endpoint (the validating gateway)."""
        return f"{HOST}:{self.ports['http']}"

    @property
    def triton_http_url(self) -> str:
        """tritonserver's own HTTP endpoint: unprotected, for this process only."""
        return f"{HOST}:{self.ports['triton_http']}"

    @property
    def grpc_url(self) -> str:
        return f"{HOST}:{self.ports['grpc']}"

    @property
    def shm_prefix(self) -> str:
        """The python backend's shared-memory names (/dev/shm) for this server only."""
        return f"onerec{os.getpid()}p{self.ports['triton_http']}_"

    @property
    def log_path(self) -> Path:
        return Path(self.opts.log) if self.opts.log else self._tmp / "tritonserver.log"

    def command(self, backends: Path, repo: Path) -> list[str]:
        shm_prefix = self.shm_prefix
        restricted = f"{RESTRICTED}:onerec-admin-key={self._admin_key}"
        return [str(tritonserver_root() / "bin" / "tritonserver"),
                f"--model-repository={repo}", f"--backend-directory={backends}",
                f"--http-address={HOST}", f"--http-port={self.ports['triton_http']}",
                f"--http-restricted-api={restricted}",
                f"--grpc-restricted-protocol={restricted}",
                f"--grpc-address={HOST}", f"--grpc-port={self.ports['grpc']}",
                f"--metrics-address={HOST}", f"--metrics-port={self.ports['metrics']}",
                "--model-control-mode=explicit",
                *[f"--load-model={name}" for name in self.info.loaded],
                "--exit-on-error=true", "--disable-auto-complete-config",
                f"--exit-timeout-secs={self.opts.exit_timeout_s}",
                f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
                f"--log-verbose={int(self.opts.verbose)}"]

    def _make_gateway(self) -> Gateway:
        """Bound before tritonserver starts: a busy port fails at once, port 0 gets its port."""
        limits = Limits.for_contract(self.info.loaded, self.info.contract,
                                     int(self.info.batching["max_batch_size"]))
        try:
            gateway = Gateway(HOST, self.ports["http"], limits)
        except OSError as exc:
            raise user_error(f"cannot listen on {HOST}: {exc}",
                             "pick another --http-port (0: a free one)") from None
        self.ports["http"] = gateway.port
        return gateway

    def _plain_tmp(self) -> Path:
        """A temporary folder whose path the python stub's command line keeps whole; its name
        carries ``repo_tag`` so the server's processes can be told by their repository."""
        prefix = f"onerec-triton-{repo_tag(self.opts.repo)}-"
        tmp = Path(tempfile.mkdtemp(prefix=prefix))
        if not PLAIN_PATH.fullmatch(str(tmp)):
            shutil.rmtree(tmp, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        return tmp

    def start(self) -> TritonServer:
        root = tritonserver_root()
        self._tmp = self._plain_tmp()
        env = {**os.environ,
               "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                        os.environ.get("PATH", "/usr/bin:/bin")])}
        try:
            self.gateway = self._make_gateway()
            # a plain name for any path (spaces, non-ASCII), and nothing written into the repository
            repo = shadow_repository(Path(self.opts.repo).resolve(), self._tmp / "repo")
            cmd = self.command(make_backend_folder(root, self._tmp / "backends"), repo)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                             stdin=subprocess.DEVNULL, start_new_session=True,
                                             preexec_fn=_die_with_parent)
            self._wait_ready()
            self.gateway.start(self.ports["triton_http"])
        except BaseException:
            self.stop()
            raise
        return self

    def _get(self, path: str, timeout: float) -> bytes:
        """GET on tritonserver's own HTTP endpoint, never through a proxy."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{self.triton_http_url}{path}", timeout=timeout) as response:
            return response.read()

    def is_ready(self) -> bool:
        try:
            self._get("/v2/health/ready", timeout=1)  # 200: every model loaded
            return True
        except (urllib.error.URLError, OSError):  # HTTPError (400: not ready) included
            return False

    def version(self) -> str:
        """The running server's version (its /v2 metadata)."""
        import json

        return json.loads(self._get("/v2", timeout=5))["version"]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.opts.ready_timeout_s
        while not self.is_ready():
            if self.cancelled():
                raise user_error("tritonserver was stopped before it was ready")
            if self.proc.poll() is not None:
                raise user_error(f"tritonserver exited with code {self.proc.returncode} before "
                                 "it was ready", "its log ends with:\n" + self.log_tail())
            if time.monotonic() > deadline:
                raise user_error(f"tritonserver was not ready after {self.opts.ready_timeout_s}"
                                 " s", "its log ends with:\n" + self.log_tail())
            time.sleep(0.1)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def stop(self) -> int | None:
        """Stop the server and return its exit code (None if it never started); once stopped,
        again is a no-op."""
        if self._tmp is None and self.proc is not None and self.proc.returncode is not None:
            return self.proc.returncode
        if self.gateway is not None:  # first: its connections to tritonserver delay the exit
            self.gateway.close()
            self.gateway = None
        if self.proc is None:
            self._cleanup()
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.opts.exit_timeout_s + 10)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() != 0:
            # Its process group: python stubs outlive a server that failed to start (they notice
            # only much later), and a server that ignored SIGTERM ends here too.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            _wait_group_gone(self.proc.pid)
        self._cleanup()
        return self.proc.returncode

    def _cleanup(self) -> None:
        for leftover in Path("/dev/shm").glob(f"{self.shm_prefix}*"):
            leftover.unlink(missing_ok=True)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

import argparse

from onerec_trt.commands import (
    add_model_argument,
    int_list,
    option,
    options_from,
    positive_int_list,
)
from onerec_trt.triton.loadtest import LoadTestOptions
from onerec_trt.triton.repository import RepositoryOptions
from onerec_trt.triton.server import ServerOptions

HELP = "Triton Inference Server: model repository (export), local server (serve), load test"
DESCRIPTION = (HELP + ". Subcommands: export, serve, check, load; "
               "'onerec-trt triton COMMAND --help' explains each.")


def _port(text: str) -> int:
    """A TCP port: 1..65535, or 0 for a free one."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port 0..65535 (0: a free one), got {text!r}")
    return value


def _add_export(p) -> None:
    add_model_argument(p)
    option(p, "--onnx", RepositoryOptions, help="the export stage's folder")
    option(p, "--fp8", RepositoryOptions,
           help="the quantize stage's folder (default: 'fp8' beside --onnx)")
    option(p, "--engine", RepositoryOptions,
           help="GPU repository: the build stage's folder (fp8.plan, reference.bf16.plan for "
                "--ab, each with its .json metadata) or one FILE.plan; without it: CPU "
                "repository")
    option(p, "--out", RepositoryOptions, help="the model repository")
    option(p, "--name", RepositoryOptions, help="the public model's name")
    option(p, "--precision", RepositoryOptions, choices=("fp8", "bf16"),
           help="what the public model serves")
    option(p, "--ab", RepositoryOptions,
           help="also serve the other precision as NAME_<precision> (A/B routing)")
    option(p, "--max-batch-size", RepositoryOptions, type=int,
           help="default: the engine profile's max batch (GPU), 64 (CPU)")
    option(p, "--preferred-batch-sizes", RepositoryOptions, type=int_list, metavar="B,B,...",
           help="dynamic batching (default: the engine profile's opt batch on GPU)")
    option(p, "--queue-delay-us", RepositoryOptions,
           help="dynamic batching: max queue delay in microseconds")
    option(p, "--batch-buckets", RepositoryOptions, metavar="max|pow2|B,B,...|none",
           help="GPU: run the engine only at these batch sizes, padding each batch up (one "
                "CUDA graph per size): max = every batch at --max-batch-size; works around "
                "TensorRT 11.1-11.2.1 leaking plugin modules on shape changes (docs/triton.md); "
                "default: max for an engine with plugins built by those versions, else none")
    option(p, "--instances", RepositoryOptions, help="model instances per generate model")
    option(p, "--threads", RepositoryOptions,
           help="CPU: ONNX Runtime threads per instance (0: all cores)")
    option(p, "--force", RepositoryOptions, help="replace an existing --out")


def _add_serve(p) -> None:
    option(p, "--repo", ServerOptions, help="a CPU model repository")
    option(p, "--http-port", ServerOptions, type=_port,
           help="the validating HTTP gateway (docs/triton.md); 0: pick a free port")
    option(p, "--grpc-port", ServerOptions, type=_port, help="0: pick a free port")
    option(p, "--metrics-port", ServerOptions, type=_port, help="0: pick a free port")
    option(p, "--log", ServerOptions, help="keep tritonserver's log in this file")
    option(p, "--verbose", ServerOptions, help="tritonserver's verbose log")


def _add_load(p) -> None:
    option(p, "--repo", LoadTestOptions, help="a CPU model repository")
    option(p, "--model", LoadTestOptions,
           help="model folder for the held-out users (default: the repository's)")
    option(p, "--public", LoadTestOptions, help="which public model (default: the first)")
    option(p, "--users", LoadTestOptions, help="held-out users in the request pool")
    option(p, "--clients", LoadTestOptions, help="concurrent clients")
    option(p, "--requests", LoadTestOptions, help="requests per client")
    option(p, "--batch-sizes", LoadTestOptions, type=positive_int_list, metavar="B,B,...",
           help="users per request, in turn")
    option(p, "--protocol", LoadTestOptions, choices=("http", "grpc", "mixed"),
           help="the clients' protocol (mixed: clients alternate http and grpc)")
    option(p, "--time-limit", LoadTestOptions, field="time_limit_s",
           help="seconds after which no new request starts")
    p.add_argument("--json", default=None, help="write the statistics here")


def add_arguments(p):
    sub = p.add_subparsers(dest="triton_command", metavar="COMMAND", required=True,
                           help="what to do (each takes --help)")
    fmt = p.formatter_class  # the stage's: a default said once
    _add_export(sub.add_parser("export", help="write a Triton model repository",
                               formatter_class=fmt))
    _add_serve(sub.add_parser("serve", formatter_class=fmt,
                              help="run a CPU repository on a local tritonserver (127.0.0.1) "
                                   "until Ctrl-C or SIGTERM"))
    check = sub.add_parser("check", formatter_class=fmt,
                           help="parse every config.pbtxt and cross-check the repository")
    option(check, "--repo", ServerOptions, help="a model repository")
    _add_load(sub.add_parser("load", formatter_class=fmt,
                             help="load-test a CPU repository on a local server (loopback)"))


def run(args) -> int:
    return {"export": _export, "serve": _serve, "check": _check,
            "load": _load}[args.triton_command](args)


def _export(args) -> int:
    from onerec_trt.triton.repository import export_repository

    export_repository(options_from(args, RepositoryOptions))
    return 0


def _serve(args) -> int:
    import signal

    from onerec_trt.triton.server import TritonServer

    stop_requests: list[int] = []
    # checks the repository first (hashing its graphs can take a while): a signal meanwhile
    # stops it as any command (cli.main)
    server = TritonServer(options_from(args, ServerOptions), cancelled=lambda: bool(stop_requests))
    # from here on Ctrl-C and SIGTERM set a flag rather than raise KeyboardInterrupt: an
    # exception raised inside Popen.poll() can leave its waitpid lock taken, and stopping the
    # server then hangs
    previous = {sig: signal.signal(sig, lambda signum, _frame: stop_requests.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _start_and_serve(server, stop_requests)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_and_serve(server, stop_requests: list[int]) -> int:
    from onerec_trt.errors import UserError

    try:
        server.start()
    except UserError:
        if not stop_requests:
            raise
        print("tritonserver stopped before it was ready", flush=True)
        return 128 + stop_requests[0]
    try:
        return _serve_until_stopped(server, stop_requests)
    finally:
        server.stop()


def _serve_until_stopped(server, stop_requests: list[int]) -> int:
    """Print the endpoints, wait for a signal; like every other command (cli.main), exit 128 +
    the signal (143 for SIGTERM, 130 for Ctrl-C), or 1 if tritonserver did not stop cleanly
    or exited by itself."""
    import time

    print(f"tritonserver ready: models {', '.join(server.info.public)}\n"
          f"  HTTP    http://{server.http_url} (validating gateway: public models only)\n"
          f"  gRPC    {server.grpc_url}\n"
          f"  metrics http://127.0.0.1:{server.ports['metrics']}/metrics\n"
          "Ctrl-C or SIGTERM stops it.", flush=True)
    while not stop_requests and server.proc.poll() is None:
        time.sleep(0.2)
    if not stop_requests:
        print(f"tritonserver exited by itself (code {server.proc.returncode}); its log "
              f"ends with:\n{server.log_tail()}", flush=True)
        return 1
    code = server.stop()
    print(f"tritonserver stopped (exit code {code})", flush=True)
    return 128 + stop_requests[0] if code == 0 else 1


def _check(args) -> int:
    from pathlib import Path

    from onerec_trt.triton.check import check_repository

    problems = check_repository(Path(args.repo))
    for problem in problems:
        print(problem)
    print(f"{args.repo}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


def _load(args) -> int:
    from onerec_trt.artifacts import write_json
    from onerec_trt.triton.loadtest import format_stats, load_repository

    stats = load_repository(options_from(args, LoadTestOptions))
    print(format_stats(stats))
    print(f"direct ONNX Runtime session (in-process, 1 thread, batches of 64): "
          f"{stats['direct_users_per_s']:.1f} users/s")
    print(f"backend: {stats['backend']}; machine: {stats['machine']}")
    if args.json:
        write_json(args.json, stats)
        print(f"wrote {args.json}")
    return 0 if stats["errors"] == 0 and stats["wrong_responses"] == 0 else 1

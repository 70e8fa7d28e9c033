import argparse

from onerec_trt.commands import add_model_argument

HELP = "Triton Inference Server: model repository (export), local server (serve), load test"
DESCRIPTION = (HELP + ". Subcommands: export, serve, check, load; "
               "'onerec-trt triton COMMAND --help' explains each.")


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 4,8,16, got {text!r}") from None


def _add_export(p) -> None:
    add_model_argument(p)
    p.add_argument("--onnx", default="runs/default/onnx", help="the export stage's folder")
    p.add_argument("--fp8", default=None,
                   help="the quantize stage's folder (default: 'fp8' beside --onnx)")
    p.add_argument("--engine", default=None,
                   help="GPU repository: the build stage's folder (fp8.plan, reference.bf16.plan "
                        "for --ab, each with its .json metadata) or one FILE.plan; without it: "
                        "CPU repository")
    p.add_argument("--out", default="runs/default/triton", help="the model repository")
    p.add_argument("--name", default="onerec", help="the public model's name")
    p.add_argument("--precision", default="fp8", choices=("fp8", "bf16"),
                   help="what the public model serves")
    p.add_argument("--ab", action="store_true",
                   help="also serve the other precision as NAME_<precision> (A/B routing)")
    p.add_argument("--max-batch-size", type=int, default=None,
                   help="default: the engine profile's max batch (GPU), 64 (CPU)")
    p.add_argument("--preferred-batch-sizes", type=_ints, default=[], metavar="B,B,...",
                   help="dynamic batching (default: the engine profile's opt batch on GPU)")
    p.add_argument("--queue-delay-us", type=int, default=100,
                   help="dynamic batching: max queue delay in microseconds")
    p.add_argument("--instances", type=int, default=1, help="model instances per runner")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU: ONNX Runtime threads per instance (0: all cores)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")


def _add_ports(p) -> None:
    p.add_argument("--repo", default="runs/default/triton", help="a CPU model repository")
    p.add_argument("--http-port", type=int, default=8000, help="0: pick a free port")
    p.add_argument("--grpc-port", type=int, default=8001, help="0: pick a free port")
    p.add_argument("--metrics-port", type=int, default=8002, help="0: pick a free port")


def _add_load(p) -> None:
    p.add_argument("--repo", default="runs/default/triton", help="a CPU model repository")
    p.add_argument("--model", default=None,
                   help="model folder for the held-out users (default: the repository's)")
    p.add_argument("--public", default=None, help="which public model (default: the first)")
    p.add_argument("--users", type=int, default=512, help="held-out users in the request pool")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients")
    p.add_argument("--requests", type=int, default=100, help="requests per client")
    p.add_argument("--batch-sizes", type=_ints, default=[1, 2, 4, 8, 16], metavar="B,B,...",
                   help="users per request, in turn")
    p.add_argument("--protocol", default="mixed", choices=("http", "grpc", "mixed"))
    p.add_argument("--time-limit", type=float, default=300.0,
                   help="seconds after which no new request starts")
    p.add_argument("--json", default=None, help="write the statistics here")


def add_arguments(p):
    sub = p.add_subparsers(dest="triton_command", metavar="COMMAND", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    _add_export(sub.add_parser("export", help="write a Triton model repository",
                               formatter_class=fmt))
    serve = sub.add_parser("serve", formatter_class=fmt,
                           help="run a CPU repository on a local tritonserver (127.0.0.1) until "
                                "Ctrl-C or SIGTERM")
    _add_ports(serve)
    serve.add_argument("--log", default=None, help="keep tritonserver's log in this file")
    serve.add_argument("--verbose", action="store_true", help="tritonserver's verbose log")
    check = sub.add_parser("check", formatter_class=fmt,
                           help="parse every config.pbtxt and cross-check the repository")
    check.add_argument("--repo", default="runs/default/triton", help="a model repository")
    _add_load(sub.add_parser("load", formatter_class=fmt,
                             help="load-test a CPU repository on a local server (loopback)"))


def run(args) -> int:
    return {"export": _export, "serve": _serve, "check": _check,
            "load": _load}[args.triton_command](args)


def _export(args) -> int:
    from onerec_trt.serve import RepositoryOptions, export_repository

    export_repository(RepositoryOptions(
        model=args.model, onnx=args.onnx, fp8=args.fp8, engine=args.engine, out=args.out,
        name=args.name, precision=args.precision, ab=args.ab,
        max_batch_size=args.max_batch_size, preferred_batch_sizes=args.preferred_batch_sizes,
        queue_delay_us=args.queue_delay_us, instances=args.instances, threads=args.threads,
        force=args.force))
    return 0


def _serve(args) -> int:
    import signal
    import time

    from onerec_trt.serve import ServerOptions, TritonServer

    # SIGTERM stops the server like Ctrl-C does: both end the wait below, the 'with' stops it
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server = TritonServer(ServerOptions(
        repo=args.repo, http_port=args.http_port, grpc_port=args.grpc_port,
        metrics_port=args.metrics_port, log=args.log, verbose=args.verbose))
    try:
        with server:
            print(f"tritonserver ready: models {', '.join(server.info['public'])}\n"
                  f"  HTTP    http://{server.http_url}\n  gRPC    {server.grpc_url}\n"
                  f"  metrics http://127.0.0.1:{server.ports['metrics']}/metrics\n"
                  "Ctrl-C or SIGTERM stops it.", flush=True)
            while server.proc.poll() is None:
                time.sleep(0.2)
            print(f"tritonserver exited by itself (code {server.proc.returncode}); its log "
                  f"ends with:\n{server.log_tail()}", flush=True)
            return 1
    except KeyboardInterrupt:
        code = server.proc.returncode if server.proc else None
        print(f"tritonserver stopped (exit code {code})", flush=True)
        return 0 if code in (0, None) else 1


def _check(args) -> int:
    from pathlib import Path

    from onerec_trt.serve import check_repository

    problems = check_repository(Path(args.repo))
    for problem in problems:
        print(problem)
    print(f"{args.repo}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


def _load(args) -> int:
    from onerec_trt.artifacts import write_json
    from onerec_trt.serve import LoadTestOptions
    from onerec_trt.serve.bench import bench_repository
    from onerec_trt.serve.loadtest import format_stats

    stats = bench_repository(args.repo, args.model, args.users, LoadTestOptions(
        clients=args.clients, requests=args.requests, batch_sizes=args.batch_sizes,
        protocol=args.protocol, time_limit_s=args.time_limit), public=args.public)
    print(format_stats(stats))
    print(f"direct ONNX Runtime runner (in-process, 1 thread, batches of 64): "
          f"{stats['direct_users_per_s']:.1f} users/s")
    print(f"backend: {stats['backend']}; machine: {stats['machine']}")
    if args.json:
        write_json(args.json, stats)
        print(f"wrote {args.json}")
    return 0 if stats["errors"] == 0 and stats["wrong_responses"] == 0 else 1

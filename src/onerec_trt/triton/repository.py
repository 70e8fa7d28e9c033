"""``onerec-trt triton export``: lay out a Triton Inference Server model repository.

Every public model is an ensemble ``guard -> generate`` with one contract (``contract.py``):

    REPO/
      repository.json        variant, public models, contract, sources, engine summary
      manifest.json          what made the repository (stage "triton")
      items.json             the model's item vocabulary: model id i is tokens[i - 1]
      onerec/                ensemble (public; precision --precision)
      onerec_guard/1/model.py            python: rejects ids outside the catalogue, ...
      onerec_fp8_generate/1/model.plan   GPU: platform tensorrt_plan (+ model.json metadata)
      onerec_fp8_generate/1/model.py     CPU: python backend + model.onnx (ONNX Runtime)
      onerec_bf16/, onerec_bf16_generate/  with --ab: the other precision, for A/B routing
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from onerec_trt.artifacts import sha256_file, write_json
from onerec_trt.backends.metadata import PLAN_SUFFIX, EngineMetadata
from onerec_trt.errors import UserError, user_error
from onerec_trt.export import ExportReport
from onerec_trt.graphs import copy_graph
from onerec_trt.layout import DEFAULT_RUN, EXPORT_JSON
from onerec_trt.provenance import check_same_model, recorded_model
from onerec_trt.reports import read_stage
from onerec_trt.stage_runner import StagedRun, check_stage_out, run_stage
from onerec_trt.triton import config as cfg
from onerec_trt.triton.check import REPOSITORY_JSON, check_repository, graph_problems
from onerec_trt.triton.contract import Contract, RepositoryReport, TensorSpec

log = logging.getLogger(__name__)

BACKEND = Path(__file__).resolve().parent / "backend"
CPU_GRAPHS = {"fp8": "fp8.cpu.onnx", "bf16": "reference.cpu.onnx"}
PRECISIONS = ("fp8", "bf16")
CPU_MAX_BATCH = 64


@dataclass
class RepositoryOptions:
    model: str = "default"
    onnx: str = str(DEFAULT_RUN.onnx)  # the export stage's folder
    fp8: str | None = None  # the quantize stage's folder (default: 'fp8' beside --onnx)
    engine: str | None = None  # the build stage's folder (fp8.plan, ... + .json), or FILE.plan
    out: str = str(DEFAULT_RUN.triton)
    name: str = "onerec"  # the public model; with ab also NAME_<other precision>
    precision: str = "fp8"
    ab: bool = False
    max_batch_size: int | None = None  # CPU: 64; GPU: the engine profile's max batch
    preferred_batch_sizes: list[int] = field(default_factory=list)  # GPU default: profile opt
    queue_delay_us: int = 100
    batch_buckets: str | None = None  # GPU: "max", "pow2" or "B,B,..." (docs/triton.md, #4849)
    instances: int = 1  # generate model instances (CPU: processes; GPU: engine contexts)
    threads: int = 1  # CPU: ONNX Runtime intra-op threads per instance (0: all cores)
    force: bool = False

    @property
    def precisions(self) -> list[str]:
        return [self.precision] + [p for p in PRECISIONS if self.ab and p != self.precision]

    def public_name(self, precision: str) -> str:
        return self.name if precision == self.precision else f"{self.name}_{precision}"


def _validate(opts: RepositoryOptions) -> None:
    if opts.precision not in PRECISIONS:
        raise user_error(f"unknown --precision {opts.precision!r}", "expected fp8 or bf16")
    if not opts.name.replace("_", "").replace("-", "").isalnum():
        raise user_error(f"--name {opts.name!r}: use letters, digits, '_' and '-' only")
    if opts.instances <= 0:
        raise user_error(f"--instances must be positive, got {opts.instances}")
    if opts.queue_delay_us < 0 or opts.threads < 0:
        raise user_error("--queue-delay-us and --threads must not be negative")
    if opts.max_batch_size is not None and opts.max_batch_size <= 0:
        raise user_error(f"--max-batch-size must be positive, got {opts.max_batch_size}")
    if any(b <= 0 for b in opts.preferred_batch_sizes):
        raise user_error("--preferred-batch-sizes must be positive")


def _load_sources(opts: RepositoryOptions) -> tuple[ExportReport, Contract, str | None]:
    """export.json, its contract and the model hash; every folder must come from --model."""
    from onerec_trt.model.checkpoint import model_hash, read_config, resolve_model_path

    if not resolve_model_path(opts.model).is_dir():
        raise user_error(f"model folder not found: {resolve_model_path(opts.model)}")
    meta = read_stage(opts.onnx, ExportReport, flag="--onnx")
    contract = Contract.from_export(meta.to_json())
    _check_contract_against_model(contract, read_config(resolve_model_path(opts.model)),
                                  Path(opts.onnx) / EXPORT_JSON)
    wanted = model_hash(opts.model)
    folders = [Path(opts.onnx)]
    if "fp8" in opts.precisions and opts.engine is None:
        folders.append(Path(fp8_folder(opts)))
    for folder in folders:
        check_same_model(recorded_model(folder), wanted, str(folder))
    return meta, contract, wanted


def _check_contract_against_model(contract: Contract, config, where: Path) -> None:
    """export.json must describe --model: its history length and its catalogue."""
    for what, got, want in (("history length", contract.max_history, config.max_history),
                            ("catalogue size", contract.num_items, config.num_items)):
        if got != want:
            raise user_error(f"{where}: {what} {got}, the model's is {want}",
                             "the graphs come from another model: export this one again")


def fp8_folder(opts: RepositoryOptions) -> str:
    return opts.fp8 or str(Path(opts.onnx).parent / "fp8")


def cpu_graph(opts: RepositoryOptions, precision: str) -> Path:
    folder = Path(fp8_folder(opts)) if precision == "fp8" else Path(opts.onnx)
    path = folder / CPU_GRAPHS[precision]
    if not path.is_file():
        stage = "quantize" if precision == "fp8" else "export"
        raise user_error(f"{precision} graph not found: {path}", f"run 'onerec-trt {stage}' first")
    return path


def check_graph_io(path: Path, contract: Contract) -> None:
    """The ONNX graph must serve the contract: its declared inputs and outputs (names, dtypes,
    ranks, the history length) and one request of the catalogue's ids run through it with
    outputs of the contract's shapes. A graph of another model fails here, not on every
    request of the server."""
    problems = graph_problems(path, contract) or _catalogue_problems(path, contract)
    if problems:
        raise user_error(problems[0], "export and quantize this model again, or pass the "
                                      "folders of the model given as --model")


def _catalogue_problems(path: Path, contract: Contract) -> list[str]:
    """Is the graph this catalogue's? Small graphs run one request; past ``LARGE_BYTES`` of
    weights, an ONNX Runtime session costs more than this check is worth (the paper-scale FP8
    CPU graph, 7 GB of weights: killed at 23 GiB on a 24 GiB machine), so the item embedding
    table's rows are compared with the catalogue instead."""
    from onerec_trt.graphs import is_large

    return _table_problems(path, contract) if is_large(path) else _dry_run_problems(path, contract)


def _table_problems(path: Path, contract: Contract) -> list[str]:
    """The exported item embedding (``...item_emb.weight``, [num_items + 1, d]) against the
    catalogue, read from the graph without its weights."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    rows = [int(t.dims[0]) for t in graph.initializer if t.name.endswith("item_emb.weight")]
    if rows and rows[0] != contract.num_items + 1:
        return [f"{path}: its item embedding has {rows[0] - 1} items, the model "
                f"{contract.num_items}"]
    return []


def _dry_run_problems(path: Path, contract: Contract) -> list[str]:
    """Run one row holding the last catalogue ids (the highest id last) through the graph."""
    import numpy as np

    from onerec_trt.graphs import make_session

    ids = np.arange(contract.num_items - contract.max_history + 1, contract.num_items + 1)
    history = np.maximum(ids, 0)[None, :].astype(np.int64)  # left-padded if the catalogue is small
    try:
        session = make_session(path, threads=1)
        results = session.run([t.name for t in contract.outputs],
                              {contract.inputs[0].name: history})
    except Exception as exc:  # ORT's own exception types
        return [f"{path}: a request of this model's item ids fails in the graph "
                f"({str(exc).splitlines()[0]})"]
    return [f"{path}: output {t.name} has shape {list(r.shape)} for one request, the contract "
            f"says [1, {', '.join(map(str, t.dims))}]"
            for t, r in zip(contract.outputs, results, strict=True)
            if list(r.shape) != [1, *t.dims]]


ENGINE_NAMES = {"fp8": ("fp8.plan",), "bf16": ("reference.bf16.plan", "bf16.plan")}


def engine_file(opts: RepositoryOptions, precision: str) -> Path:
    """The engine for ``precision`` in --engine: FILE itself, else in the folder the build
    stage's name (fp8.plan, reference.bf16.plan), else the one plan whose metadata records this
    precision, else the only plan there is."""
    path = Path(opts.engine)
    if path.is_file():
        if precision != opts.precision:
            raise user_error("--ab with --engine FILE: which engine serves the other precision?",
                             "pass the build stage's folder (fp8.plan, reference.bf16.plan)")
        return path
    if not path.is_dir():
        raise user_error(f"engine not found: {path}")
    for name in ENGINE_NAMES[precision]:
        if (path / name).is_file():
            return path / name
    plans = sorted(path.glob(f"*{PLAN_SUFFIX}"))
    tagged = [p for p in plans if _precision_of(p) == precision]
    if len(tagged) == 1:
        return tagged[0]
    if len(plans) == 1 and precision == opts.precision and not opts.ab:
        return plans[0]
    raise user_error(f"no {precision} engine in {path}: expected "
                     f"{' or '.join(ENGINE_NAMES[precision])}",
                     f"found: {', '.join(p.name for p in plans) or 'no .plan files'}")


def _batching(opts: RepositoryOptions, engines: list[EngineMetadata]) -> cfg.Batching:
    for engine in engines:
        if engine.min_batch != 1:
            raise user_error(f"{engine.plan}: the profile's min batch is {engine.min_batch}",
                             "Triton's dynamic batcher sends any batch from 1 up: build the "
                             "engine with --min-batch 1")
    limit = min((e.max_batch for e in engines), default=None)
    size = opts.max_batch_size or limit or CPU_MAX_BATCH
    if limit is not None and size > limit:
        raise user_error(f"--max-batch-size {size} is above the engine profile's max batch "
                         f"{limit}", "rebuild the engine with a larger profile")
    preferred = list(opts.preferred_batch_sizes)
    if not preferred and engines and 1 < engines[0].opt_batch <= size:
        preferred = [engines[0].opt_batch]  # the batch TensorRT tuned its kernels for
    if any(b > size for b in preferred):
        raise user_error(f"--preferred-batch-sizes {preferred} exceed max_batch_size {size}")
    buckets = _buckets(opts.batch_buckets or _default_buckets(engines), size, gpu=bool(engines))
    try:
        return cfg.Batching(size, sorted(set(preferred)), opts.queue_delay_us, buckets)
    except ValueError as exc:
        raise user_error(f"--batch-buckets: {exc}") from None


# TensorRT releases that leak AOT plugin modules on every shape change (NVIDIA/TensorRT#4849)
LEAKY_TENSORRT = ((11, 1), (11, 2, 1))  # first and last affected, inclusive


def leaks_plugin_modules(engine: EngineMetadata) -> bool:
    """Does this engine run AOT plugins on a TensorRT release that leaks them (#4849)? Read
    from its metadata (``plugins``, ``tensorrt.version``); an unreadable version is not
    assumed to leak."""
    version = (engine.raw.get("tensorrt") or {}).get("version")
    try:
        parts = tuple(int(p) for p in str(version).split(".")[:3])
    except ValueError:
        return False
    first, last = LEAKY_TENSORRT
    return bool(engine.plugins) and first <= parts[:2] and parts[:len(last)] <= last


def _default_buckets(engines: list[EngineMetadata]) -> str | None:
    """``max`` where an engine would leak on every batch-size change, else none."""
    return "max" if any(leaks_plugin_modules(e) for e in engines) else None


def _buckets(spec: str | None, max_batch: int, gpu: bool) -> list[int]:
    """``--batch-buckets``: "max" (pad every batch to max_batch_size: no shape change at all),
    "pow2" (1, 2, 4, ..., max), explicit sizes ending at max_batch_size, or "none" (every
    batch at its own size, also where the default would be "max")."""
    if spec is None or spec == "none":
        return []
    if not gpu:
        raise user_error("--batch-buckets is for GPU repositories (--engine)",
                         "a CPU repository runs ONNX Runtime, which has no CUDA graphs")
    if spec == "max":
        return [max_batch]
    if spec == "pow2":
        return cfg.bucket_sizes(max_batch)
    try:
        return [int(b) for b in spec.split(",") if b.strip()]
    except ValueError:
        raise user_error(f"--batch-buckets {spec!r}", "expected max, pow2 or sizes like "
                         f"1,8,{max_batch}") from None


def _write_config(folder: Path, config: dict) -> None:
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(cfg.render(config) + "\n")


def _write_generate(tmp: Path, opts, precision: str, contract: Contract, batching: cfg.Batching,
                    engine: EngineMetadata | None) -> dict:
    name = f"{opts.name}_{precision}_generate"
    if engine is not None:
        _write_config(tmp / name, cfg.tensorrt_model(name, contract, batching, opts.instances))
        shutil.copyfile(engine.plan, tmp / name / "1" / "model.plan")
        write_json(tmp / name / "1" / "model.json", engine.raw)
        return {"model": name, "engine": str(engine.plan), "sha256": sha256_file(engine.plan),
                **engine.summary()}
    graph = cpu_graph(opts, precision)
    check_graph_io(graph, contract)
    # num_items: the generate model applies the guard's rules itself, for clients calling it
    params = {"onnx_file": "model.onnx", "intra_op_threads": opts.threads,
              "num_items": contract.num_items}
    _write_config(tmp / name, cfg.python_model(name, contract, batching, opts.instances, params))
    copy_graph(graph, tmp / name / "1" / "model.onnx")  # with its .data file, if it has one
    shutil.copyfile(BACKEND / "onnx_generate.py", tmp / name / "1" / "model.py")
    shutil.copyfile(BACKEND / "guard.py", tmp / name / "1" / "guard.py")
    return {"model": name, "graph": str(graph), "sha256": sha256_file(graph)}


def _write_guard(tmp: Path, opts, contract: Contract, batching: cfg.Batching) -> str:
    name = f"{opts.name}_guard"
    checked = TensorSpec("checked_history", contract.inputs[0].dtype, contract.inputs[0].dims)
    quick = cfg.Batching(batching.max_batch_size, [], 0)  # cheap checks: never wait for more
    _write_config(tmp / name, cfg.python_model(name, contract, quick, 1,
                                               {"num_items": contract.num_items},
                                               outputs=(checked,)))
    shutil.copyfile(BACKEND / "guard.py", tmp / name / "1" / "model.py")
    return name


def _write_ensemble(tmp: Path, public: str, guard: str, generate: str, contract: Contract,
                    max_batch: int) -> None:
    steps = [(guard, {"history": "history"}, {"checked_history": "checked_history"}),
             (generate, {"history": "checked_history"},
              {t.name: t.name for t in contract.outputs})]
    _write_config(tmp / public, cfg.ensemble(public, contract, max_batch, steps))


def export_repository(opts: RepositoryOptions) -> RepositoryReport:
    """Write the model repository of ``opts`` (see the module docstring) into ``opts.out``."""
    # the fp8 folder beside --onnx is read without --fp8: --force must not replace it either
    inputs = [opts, fp8_folder(opts)]
    check_stage_out(opts, inputs=inputs)  # --out first, before any other check or work
    _validate(opts)
    info = run_stage("triton", opts, lambda run: _export(opts, run), report=REPOSITORY_JSON,
                     inputs=inputs, check=_check_written)
    log.info(f"wrote {info.variant.upper()} repository {opts.out}: "
             + ", ".join(f"{n} ({p})" for n, p in info.public.items())
             + f", max_batch_size {info.batching['max_batch_size']}")
    return info


def _export(opts: RepositoryOptions, run: StagedRun) -> RepositoryReport:
    """The repository, written and checked in the staged folder ``run.folder``."""
    from onerec_trt.model.checkpoint import VOCAB, resolve_model_path

    meta, contract, model_sha = _load_sources(opts)
    engines = {}
    if opts.engine is not None:
        for precision in opts.precisions:
            engines[precision] = EngineMetadata.read(engine_file(opts, precision))
            engines[precision].check_hash(engines[precision].plan.read_bytes(),
                                          str(engines[precision].plan))
            check_engine(engines[precision], contract, model_sha)
    batching = _batching(opts, list(engines.values()))
    if opts.batch_buckets is None and batching.buckets:
        log.info("every batch padded to max_batch_size (--batch-buckets max, the default "
                 "here): the engine's TensorRT leaks its AOT plugins' CUDA modules on every "
                 "shape change (NVIDIA/TensorRT#4849); --batch-buckets none turns this off")
    tmp = run.folder
    guard = _write_guard(tmp, opts, contract, batching)
    generate_models, public = {}, {}
    for precision in opts.precisions:
        generate_models[precision] = _write_generate(tmp, opts, precision, contract, batching,
                                                     engines.get(precision))
        name = opts.public_name(precision)
        _write_ensemble(tmp, name, guard, generate_models[precision]["model"], contract,
                        batching.max_batch_size)
        public[name] = precision
    shutil.copyfile(resolve_model_path(opts.model) / VOCAB, tmp / VOCAB)
    info = RepositoryReport(
        format=1, variant="gpu" if engines else "cpu", public=public, loaded=list(public),
        guard=guard, generate_models=generate_models, contract=contract.to_json(),
        batching=asdict(batching), instances=opts.instances,
        model=str(resolve_model_path(opts.model).resolve()), model_sha256=model_sha,
        export=meta.options)
    run.inputs.update({"model": model_sha or "",
                       **{p: r["sha256"] for p, r in generate_models.items()}})
    return info


def _check_written(tmp: Path) -> None:
    """The repository's own check, on the staged folder with its manifest."""
    try:
        problems = check_repository(tmp)
    except ImportError:
        raise user_error("checking config.pbtxt needs Triton's model_config_pb2",
                         "pip install 'tritonclient[grpc]'") from None
    if problems:
        raise RuntimeError("the repository failed its own check:\n" + "\n".join(problems))


def _precision_of(plan: Path) -> str | None:
    """The ``precision`` a plan's metadata records (None without readable metadata)."""
    try:
        return EngineMetadata.read(plan).precision
    except UserError:
        return None


def check_engine(info: EngineMetadata, contract: Contract, model_sha: str | None) -> None:
    """The engine must serve the contract: same names, dtypes, non-batch dims, dynamic batch;
    and come from the same model where both hashes are known."""
    where = str(info.plan.with_suffix(".json"))
    check_same_model(info.model_sha256, model_sha, str(info.plan),
                     "export, quantize and build this model")
    for role, engine, wanted in (("input", info.inputs, contract.inputs),
                                 ("output", info.outputs, contract.outputs)):
        names = {t.name for t in wanted}
        if set(engine) != names:
            raise user_error(f"{where}: engine {role}s {sorted(engine)} differ from the "
                             f"exported graph's {sorted(names)}",
                             "build the engine from this export's graphs")
        for spec in wanted:
            got = engine[spec.name]
            if got.dtype != spec.dtype or got.shape[1:] != spec.dims:
                raise user_error(
                    f"{where}: engine {role} {spec.name} is {got.dtype} {list(got.shape)}, the "
                    f"contract says {spec.dtype} [-1, {', '.join(map(str, spec.dims))}]",
                    "build the engine from this export's graphs")
            if not got.shape or got.shape[0] != -1:
                raise user_error(f"{where}: engine {role} {spec.name} has a fixed batch axis "
                                 f"({list(got.shape)})", "build with a dynamic batch profile")

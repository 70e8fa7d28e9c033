"""Check a model repository without a server and without TensorRT.

Every ``config.pbtxt`` is parsed with Triton's ``ModelConfig`` protobuf schema (tritonclient's
``model_config_pb2``), then cross-checked: names match folders, files exist, ensemble steps wire
declared tensors of matching dtype and dims, batch limits nest, the public models keep the
contract in ``repository.json``, each TensorRT model agrees with its engine metadata
(``1/model.json``: I/O names, dtypes, dims, dynamic batch axis, profile max >= max_batch_size),
each ONNX graph's declared inputs and outputs agree with the contract, and every file a model
runs (``1/*``: model.py, model.onnx and its data, model.plan, model.json) still has the sha256
that ``manifest.json`` recorded when the repository was written.
"""

from __future__ import annotations

import json
from pathlib import Path

from onerec_trt.artifacts import MANIFEST, sha256_file
from onerec_trt.errors import UserError
from onerec_trt.triton import config as cfg
from onerec_trt.triton.contract import TRITON_DTYPES, Contract, RepositoryReport, TensorSpec

REPOSITORY_JSON = RepositoryReport.FILE


def _declared(value) -> tuple[str, list]:
    """An ONNX graph input/output's dtype name and dims (ints, or names for symbolic dims)."""
    from onnx import helper

    from onerec_trt.graphs import declared_dims

    elem_type = value.type.tensor_type.elem_type
    dtype = helper.tensor_dtype_to_np_dtype(elem_type).name if elem_type else "?"
    return dtype, declared_dims(value)


def _io_problems(role: str, found: dict, wanted: tuple[TensorSpec, ...]) -> list[str]:
    want = {t.name: t for t in wanted}
    if set(found) != set(want):
        return [f"graph {role} {sorted(found)} differ from the contract's {sorted(want)}"]
    problems = []
    for name, (dtype, dims) in found.items():
        spec = want[name]
        # fixed dims must be the contract's; symbolic ones (the outputs' K, L) cannot be checked
        if dtype != spec.dtype or len(dims) != len(spec.dims) + 1 or any(
                isinstance(d, int) and d != w
                for d, w in zip(dims[1:], spec.dims, strict=True)):
            problems.append(f"graph {role[:-1]} {name} is {dtype} {dims}, the contract says "
                            f"{spec.dtype} [N, {', '.join(map(str, spec.dims))}]")
    return problems


def graph_problems(path: Path, contract: Contract) -> list[str]:
    """What in the ONNX graph's declared inputs and outputs breaks the contract (names, dtypes,
    ranks, fixed dims: a graph exported for another history length or another model)."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # onnx raises DecodeError and friends
        return [f"{path}: not an ONNX model ({str(exc).splitlines()[0] if str(exc) else exc!r})"]
    init = {i.name for i in graph.initializer}
    inputs = {v.name: _declared(v) for v in graph.input if v.name not in init}
    outputs = {v.name: _declared(v) for v in graph.output}
    return [f"{path}: {p}" for p in (_io_problems("inputs", inputs, contract.inputs)
                                     + _io_problems("outputs", outputs, contract.outputs))]


def hash_problems(repo: Path) -> list[str]:
    """Files of the models' version folders whose sha256 differs from ``manifest.json``'s."""
    try:
        recorded = json.loads((repo / MANIFEST).read_text())["files"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        return [f"{repo / MANIFEST}: cannot read the recorded file hashes ({exc})"]
    problems = []
    for name, digest in sorted(recorded.items()):
        if name.count("/") < 2 or name.split("/")[1] != "1":
            continue  # config.pbtxt files may be tuned by hand; check parses them instead
        path = repo / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256_file(path) != digest:
            problems.append(f"{name}: sha256 differs from the one manifest.json recorded "
                            "(edited after export; export the repository again)")
    # subfolders too: Python runs a __pycache__/*.pyc beside model.py instead of the source
    present = {p.relative_to(repo).as_posix() for p in repo.glob("*/1/**/*") if p.is_file()}
    problems += [f"{name}: not written by export (not in manifest.json)"
                 for name in sorted(present - set(recorded))]
    return problems


def load_configs(repo: Path) -> dict:
    """Folder name -> parsed ModelConfig for every model folder (raises ImportError without
    tritonclient, ValueError naming the file on invalid text)."""
    configs = {}
    for path in sorted(repo.glob("*/config.pbtxt")):
        try:
            configs[path.parent.name] = cfg.parse(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return configs


def _io(config) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {t.name: (cfg.data_type_name(t.data_type), tuple(t.dims))
            for t in [*config.input, *config.output]}


def check_repository(repo: str | Path) -> list[str]:
    """All problems found (an empty list: the repository is consistent)."""
    repo = Path(repo)
    try:
        info = json.loads((repo / REPOSITORY_JSON).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [f"{repo / REPOSITORY_JSON}: {exc}"]
    try:
        configs = load_configs(repo)
    except ValueError as exc:
        return [str(exc)]
    problems = []
    for folder, config in configs.items():
        problems += _check_model(repo / folder, config, configs)
    problems += _check_public(info, configs)
    problems += _check_graphs(repo, info, configs)
    return problems + hash_problems(repo)


def _check_graphs(repo: Path, info: dict, configs: dict) -> list[str]:
    """Each python-backend model's ONNX graph against the contract."""
    try:
        contract = Contract.from_json(info["contract"])
    except (KeyError, TypeError):
        return []  # _check_public said so
    problems = []
    for folder, config in configs.items():
        onnx_file = config.parameters["onnx_file"].string_value \
            if "onnx_file" in config.parameters else None
        if config.backend == "python" and onnx_file and (repo / folder / "1" / onnx_file).is_file():
            problems += [p.replace(str(repo / folder), folder) for p in
                         graph_problems(repo / folder / "1" / onnx_file, contract)]
    return problems


def _check_model(folder: Path, config, configs: dict) -> list[str]:
    where = f"{folder.name}/config.pbtxt"
    problems = [] if config.name == folder.name else [
        f"{where}: name {config.name!r} differs from its folder"]
    if not (folder / "1").is_dir():
        problems.append(f"{folder.name}: no version folder 1/")
    if config.platform == "ensemble":
        return problems + _check_ensemble(where, config, configs)
    if config.platform == "tensorrt_plan":
        return problems + _check_tensorrt(folder, where, config)
    if config.backend == "python":
        params = {k: v.string_value for k, v in config.parameters.items()}
        needed = ["model.py"] + ([params["onnx_file"]] if "onnx_file" in params else [])
        needed += ["guard.py"] if "onnx_file" in params and "num_items" in params else []
        problems += [f"{folder.name}/1/{n}: missing" for n in needed
                     if not (folder / "1" / n).is_file()]
        return problems
    return problems + [f"{where}: unknown platform/backend {config.platform or config.backend!r}"]


def _check_ensemble(where: str, config, configs: dict) -> list[str]:
    problems = []
    known = {t.name: (cfg.data_type_name(t.data_type), tuple(t.dims)) for t in config.input}
    for i, step in enumerate(config.ensemble_scheduling.step):
        model = configs.get(step.model_name)
        if model is None:
            problems.append(f"{where}: step {i} runs {step.model_name!r}, not in the repository")
            continue
        io = _io(model)
        if config.max_batch_size > model.max_batch_size:
            problems.append(f"{where}: max_batch_size {config.max_batch_size} is above "
                            f"{step.model_name}'s {model.max_batch_size}")
        for key, tensor in step.input_map.items():
            if tensor not in known:
                problems.append(f"{where}: step {i} reads {tensor!r} before anything writes it")
            elif io.get(key) != known[tensor]:
                problems.append(f"{where}: step {i} feeds {tensor} {known[tensor]} into "
                                f"{step.model_name}.{key} {io.get(key)}")
        for key, tensor in step.output_map.items():
            if key not in io:
                problems.append(f"{where}: {step.model_name} has no output {key!r}")
            else:
                known[tensor] = io[key]
    for t in config.output:
        want = (cfg.data_type_name(t.data_type), tuple(t.dims))
        if known.get(t.name) != want:
            problems.append(f"{where}: output {t.name} {want} is produced as {known.get(t.name)}")
    return problems


def _check_tensorrt(folder: Path, where: str, config) -> list[str]:
    from onerec_trt.backends.metadata import EngineMetadata

    plan = folder / "1" / (config.default_model_filename or "model.plan")
    if not plan.is_file():
        return [f"{folder.name}/1/{plan.name}: missing"]
    try:
        engine = EngineMetadata.read(plan)
        engine.check_hash(plan.read_bytes(), str(plan))
    except UserError as exc:
        return [str(exc).splitlines()[0]]
    problems = []
    if config.max_batch_size > engine.max_batch:
        problems.append(f"{where}: max_batch_size {config.max_batch_size} is above the engine "
                        f"profile's max batch {engine.max_batch}")
    tensors = {**engine.inputs, **engine.outputs}
    declared = [*config.input, *config.output]
    if {t.name for t in declared} != set(tensors):
        problems.append(f"{where}: tensors {sorted(t.name for t in declared)} differ from the "
                        f"engine's {sorted(tensors)}")
    for t in declared:
        got = tensors.get(t.name)
        if got is None:
            continue
        want = (cfg.data_type_name(t.data_type), (-1, *t.dims))
        got_type = TRITON_DTYPES.get(got.dtype, got.dtype)
        if (got_type, got.shape) != want:
            problems.append(f"{where}: {t.name} is {want[0]} {list(want[1])} in the config, "
                            f"{got_type} {list(got.shape)} in the engine")
    return problems


def _check_public(info: dict, configs: dict) -> list[str]:
    problems = []
    try:
        contract = Contract.from_json(info["contract"])
        public = list(info["load"])
    except (KeyError, TypeError) as exc:
        return [f"{REPOSITORY_JSON}: missing {exc}"]
    want = {t.name: (t.triton_dtype, t.dims) for t in (*contract.inputs, *contract.outputs)}
    for name in public:
        if name not in configs:
            problems.append(f"{REPOSITORY_JSON}: public model {name!r} has no folder")
        elif _io(configs[name]) != want:
            problems.append(f"{name}/config.pbtxt: I/O {_io(configs[name])} differ from the "
                            f"contract {want}")
    return problems

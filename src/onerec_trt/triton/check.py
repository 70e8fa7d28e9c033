"""Check a model repository without a server and without TensorRT.

Every ``config.pbtxt`` is parsed with Triton's ``ModelConfig`` protobuf schema (tritonclient's
``model_config_pb2``), then cross-checked: names match folders, files exist, ensemble steps wire
declared tensors of matching dtype and dims, batch limits nest, the public models keep the
contract in ``repository.json``, and each TensorRT model agrees with its engine metadata
(``1/model.json``: I/O names, dtypes, dims, dynamic batch axis, profile max >= max_batch_size).
"""

from __future__ import annotations

import json
from pathlib import Path

from onerec_trt.errors import UserError
from onerec_trt.triton import config as cfg
from onerec_trt.triton.contract import TRITON_DTYPES, Contract

REPOSITORY_JSON = "repository.json"


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
    from onerec_trt.engines.metadata import EngineMetadata

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

"""Engine metadata: the ``<name>.json`` the build stage writes beside each ``<name>.plan``
(format ``onerec-trt-engine/1``, docs/tensorrt.md).

Keys this module relies on (everything else is copied into the repository as is):

- ``profile``: the optimization profile of input ``history``, either
  ``{"history": {"min": [1, S], "opt": [B, S], "max": [M, S]}}`` (shapes, as the build stage
  writes it) or ``{"history": {"min": 1, "opt": B, "max": M}}`` (batch sizes); a list of such
  profiles means profile 0 (the one Triton uses unless told otherwise).
- ``inputs`` / ``outputs``: the engine's I/O tensors, a list of ``{"name", "dtype", "shape"}`` or a
  dict ``name -> {"dtype", "shape"}``; shapes include the batch axis (-1 when dynamic); dtypes in
  any common spelling (TensorRT's ``INT64``/``FLOAT``/``HALF``/``BF16``, ``int64``, ``float32``).
- optional, checked when present: ``precision`` (picks the engine for fp8/bf16 in a folder),
  ``plan_sha256`` (must hash the plan's bytes), ``model_sha256`` (must be --model's).
- recorded, not checked: ``format``, ``tensorrt``, ``gpu``, ``plugins``, ``onnx``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from onerec_trt.artifacts import read_json, sha256_file
from onerec_trt.errors import user_error
from onerec_trt.serve.contract import Contract, normalize_dtype

PLAN_SUFFIX = ".plan"


@dataclass(frozen=True)
class EngineTensor:
    name: str
    dtype: str  # numpy-style name
    shape: tuple[int, ...]  # with the batch axis (-1: dynamic)


@dataclass
class EngineInfo:
    plan: Path
    meta: dict
    min_batch: int
    opt_batch: int
    max_batch: int
    inputs: dict[str, EngineTensor] = field(default_factory=dict)
    outputs: dict[str, EngineTensor] = field(default_factory=dict)

    def summary(self) -> dict:
        keep = ("format", "precision", "tensorrt", "gpu", "plugins", "onnx", "model_sha256")
        return {"plan": self.plan.name, "profile": {"history": {
            "min": self.min_batch, "opt": self.opt_batch, "max": self.max_batch}},
            **{k: self.meta[k] for k in keep if k in self.meta}}


def read_engine(plan: Path) -> EngineInfo:
    """Read ``plan``'s metadata JSON (same stem, ``.json``) and normalize it."""
    meta_path = plan.with_suffix(".json")
    meta = read_json(meta_path, "engine metadata (written by the build stage beside the .plan)")
    if not isinstance(meta, dict):
        raise user_error(f"{meta_path}: expected a JSON object")
    where = str(meta_path)
    inputs = _tensors(meta.get("inputs"), "inputs", where)
    outputs = _tensors(meta.get("outputs"), "outputs", where)
    lo, opt, hi = _profile(meta.get("profile"), where)
    recorded = meta.get("plan_sha256")
    if recorded and plan.is_file() and recorded != sha256_file(plan):
        raise user_error(f"{plan} does not match its metadata (plan_sha256 differs)",
                         "rebuild the engine, or restore the .plan/.json pair")
    return EngineInfo(plan, meta, lo, opt, hi, inputs, outputs)


def precision_of(plan: Path) -> str | None:
    """The ``precision`` its metadata records (None without metadata or key)."""
    try:
        meta = json.loads(plan.with_suffix(".json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return meta.get("precision") if isinstance(meta, dict) else None


def _tensors(value, key: str, where: str) -> dict[str, EngineTensor]:
    if isinstance(value, dict):
        value = [{"name": k, **v} for k, v in value.items() if isinstance(v, dict)]
    if not isinstance(value, list) or not value:
        raise user_error(f"{where}: '{key}' must list the engine's tensors",
                         'expected [{"name": ..., "dtype": ..., "shape": [-1, ...]}, ...]')
    out = {}
    for item in value:
        try:
            shape = tuple(int(d) for d in item["shape"])
            out[item["name"]] = EngineTensor(item["name"], normalize_dtype(item["dtype"]), shape)
        except (KeyError, TypeError, ValueError) as exc:
            raise user_error(f"{where}: bad entry in '{key}': {item!r} ({exc})") from None
    return out


def _profile(value, where: str) -> tuple[int, int, int]:
    if isinstance(value, list):
        value = value[0] if value else None
    entry = value.get("history") if isinstance(value, dict) else None
    note = '{"history": {"min": [1, S], "opt": [B, S], "max": [M, S]}}'
    if not isinstance(entry, dict) or not all(k in entry for k in ("min", "opt", "max")):
        raise user_error(f"{where}: no optimization profile for input 'history'", note)
    try:
        lo, opt, hi = (int(entry[k][0] if isinstance(entry[k], list) else entry[k])
                       for k in ("min", "opt", "max"))
    except (TypeError, ValueError, IndexError):
        raise user_error(f"{where}: bad profile {entry!r}", note) from None
    if not 1 <= lo <= opt <= hi:
        raise user_error(f"{where}: profile batch sizes must satisfy 1 <= min <= opt <= max, "
                         f"got {lo}, {opt}, {hi}")
    return lo, opt, hi


def check_engine(info: EngineInfo, contract: Contract, model_sha: str | None) -> None:
    """The engine must serve the contract: same names, dtypes, non-batch dims, dynamic batch;
    and come from the same model where both hashes are known."""
    where = str(info.plan.with_suffix(".json"))
    recorded = info.meta.get("model_sha256")
    if model_sha and recorded and recorded != model_sha:
        raise user_error(f"{info.plan} was built from another model (hash {recorded[:12]}, "
                         f"--model has {model_sha[:12]})", "export, quantize and build this model")
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

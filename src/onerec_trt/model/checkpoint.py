"""A model folder: weights (safetensors), config JSON, tokenizer, item vocabulary, manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from onerec_trt.artifacts import MANIFEST, json_object, read_json, write_atomic, write_json
from onerec_trt.data.vocab import ItemVocab
from onerec_trt.errors import user_error
from onerec_trt.layout import SHIPPED_MODELS
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.onerec import OneRecModel
from onerec_trt.model.tokenizer import SemanticIds

SHIPPED = SHIPPED_MODELS["default"]
MODEL_FOLDER = ("pass a folder written by 'onerec-trt train', 'init' or 'import', or a shipped "
                "model: 'default', 'qwen3-ml1m'")
WEIGHTS, CONFIG, VOCAB, TRAINING = "model.safetensors", "config.json", "items.json", "training.json"


@dataclass
class ModelBundle:
    """Everything a stage needs to run a trained model."""

    model: OneRecModel  # or an imported model's adapter (model/hf): the protocol either way
    config: ModelConfig  # or model.hf.loader.ImportedConfig (num_items, codebook_sizes, ...)
    semantic_ids: SemanticIds
    vocab: ItemVocab
    path: Path | None = None
    training: dict = field(default_factory=dict)

    @property
    def dataset(self) -> str | None:
        return self.training.get("dataset")

    @property
    def untrained(self) -> bool:
        """Random weights from ``onerec-trt init``: good for scale and speed, not accuracy."""
        return bool(self.training.get("untrained"))

    def load_data(self, dataset: str | None = None, data: str | None = None,
                  columns: str | None = None):
        """The evaluation data, encoded with this model's vocabulary (unknown items counted).

        Without arguments: the dataset, file, column mapping and filters the model was trained
        on, so the leave-one-out split is the training run's.
        """
        from onerec_trt.data import load_dataset

        dataset = dataset or self.dataset
        if dataset is None and self.untrained:
            raise user_error(f"{self.path} is untrained ('onerec-trt init'): it has no dataset "
                             "and no users", f"pass --histories {self.path}/histories.npy (or "
                                             "your own .npy of item-id histories)")
        if dataset is None:
            raise user_error("the model does not record its dataset", "pass --dataset")
        filters = {}
        if dataset == self.dataset:
            data = data or self.training.get("data")
            columns = columns or self.training.get("columns")
            filters = self.training.get("filters") or {}
        return load_dataset(dataset, data, columns=columns, vocab=self.vocab, **filters)

    def calibration_histories(self, users: int, seed: int = 0, file: str | None = None,
                              dataset: str | None = None, data: str | None = None,
                              columns: str | None = None) -> tuple[np.ndarray, str]:
        """[users, S] histories to calibrate (or profile) on, and where they came from: the
        ``file`` (a ``--calib-data`` .npy), else a seeded sample of training parts (never a
        validation or test target)."""
        from onerec_trt.data.samplers import training_histories

        if file:
            return self.histories_file(file), file
        loaded = self.load_data(dataset, data, columns)
        hist = training_histories(loaded.split(), users, self.config.max_history, seed)
        return hist, f"{loaded.name} training split, {len(hist)} users (seed {seed})"

    def histories_file(self, file: str | Path, option: str = "--histories") -> np.ndarray:
        """A ``--histories`` .npy file, checked against this model (history length, items)."""
        from onerec_trt.data.histories import load_histories

        return load_histories(file, self.config.max_history, self.config.num_items, option)


def resolve_model_path(path: str | Path) -> Path:
    """``default`` and ``qwen3-ml1m`` name the shipped models; anything else is a folder."""
    return SHIPPED_MODELS.get(str(path), Path(path))


def save_model(folder: str | Path, bundle: ModelBundle) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in bundle.model.state_dict().items()}
    write_atomic(folder / WEIGHTS, lambda tmp: save_file(state, str(tmp)))
    write_json(folder / CONFIG, bundle.config.to_dict())
    bundle.semantic_ids.save(folder)
    bundle.vocab.save(folder / VOCAB)
    write_json(folder / TRAINING, bundle.training)


SAFETENSORS_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16,
                      "I64": torch.int64, "I32": torch.int32, "BOOL": torch.bool}


# bytes per element of every safetensors dtype (the format's own list)
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8,
               "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
DAMAGED = "the file is damaged or truncated: copy the model folder again"
MAX_HEADER = 100_000_000  # the safetensors reader's own limit on a header


def safetensors_header(path: str | Path) -> dict[str, dict]:
    """The tensors a safetensors file holds (name -> dtype, shape, data_offsets), checked
    against the file's size without reading the data: a user error for a truncated, random or
    foreign file instead of the reader's own message."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 2 <= length <= min(size - 8, MAX_HEADER):
            raise user_error(f"{path} is truncated or not a safetensors file ({size:,} bytes, "
                             "no complete header)", DAMAGED)
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            header = None
    if not isinstance(header, dict):
        raise user_error(f"{path} is not a safetensors file (its header is not a JSON object)",
                         DAMAGED)
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    end = max((_tensor_end(path, name, info) for name, info in tensors.items()), default=0)
    if 8 + length + end > size:
        raise user_error(f"{path} is truncated: its tensors need {8 + length + end:,} bytes, "
                         f"the file has {size:,}", DAMAGED)
    return tensors


def _tensor_end(path: Path, name: str, info: object) -> int:
    """Where one header entry's data ends (relative to the data), once its fields agree."""
    ok = isinstance(info, dict) and info.get("dtype") in DTYPE_BYTES
    shape, offsets = (info.get("shape"), info.get("data_offsets")) if ok else (None, None)
    ok = ok and isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)
    ok = ok and isinstance(offsets, list) and len(offsets) == 2 and all(
        isinstance(o, int) and o >= 0 for o in offsets)
    if ok:
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        ok = offsets[1] - offsets[0] == count * DTYPE_BYTES[info["dtype"]]
    if not ok:
        raise user_error(f"{path} is not a valid safetensors file: the entry of tensor "
                         f"{name!r} is malformed", DAMAGED)
    return offsets[1]


def read_weights(path: Path, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The state dict in a safetensors file; with ``dtype``, each floating tensor is read with
    plain file reads (no memory map) and converted at once, so the file's dtype never exists in
    memory as a whole: a 1B-parameter fp32 model loads into bf16 holding one fp32 tensor at a
    time."""
    if dtype is None:
        return load_file(str(path))
    out = {}
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
        base = 8 + size
        for key, info in header.items():
            if key == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            raw = torch.empty(end - begin, dtype=torch.uint8)
            handle.seek(base + begin)
            handle.readinto(memoryview(raw.numpy()))
            tensor = raw.view(SAFETENSORS_DTYPES[info["dtype"]]).reshape(info["shape"])
            out[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
            del raw, tensor
    return out


def load_model(path: str | Path, dtype: torch.dtype | None = None) -> ModelBundle:
    """A model folder (``dtype``: convert the weights while reading them)."""
    folder = resolve_model_path(path)
    if not folder.is_dir():
        raise user_error(f"model folder not found: {folder}",
                         MODEL_FOLDER)
    from onerec_trt.model.hf.loader import is_imported, load_imported

    if is_imported(folder):
        return load_imported(folder, dtype)
    missing = [n for n in (WEIGHTS, CONFIG, VOCAB) if not (folder / n).is_file()]
    if missing:
        stage = json_object(folder / MANIFEST).get("stage")
        what = f"written by 'onerec-trt {stage}'" if isinstance(stage, str) else \
            f"missing {', '.join(missing)}"
        raise user_error(f"{folder} is not a model folder ({what})",
                         MODEL_FOLDER)
    config = read_config(folder)
    vocab = ItemVocab.load(folder / VOCAB)
    if len(vocab) != config.num_items:
        raise user_error(f"{folder / VOCAB} lists {len(vocab)} items, {CONFIG} says num_items "
                         f"{config.num_items}", "the files come from different models: copy "
                                                "the model folder again")
    ids = _semantic_ids(folder, config)
    with torch.device("meta"):
        model = OneRecModel(config)
    _check_weights(folder, safetensors_header(folder / WEIGHTS), model)
    model.load_state_dict(read_weights(folder / WEIGHTS, dtype), assign=True)
    model.semantic_ids = ids
    model.eval()
    return ModelBundle(model, config, ids, vocab, folder, _read_training(folder))


def read_config(folder: Path) -> ModelConfig:
    """A model folder's ``config.json``: a user error for anything but a valid config of a
    trained model (num_items at least 1). An imported folder's config comes from its import
    record (``model.hf.loader.ImportedConfig``: num_items, codebook_sizes, max_history)."""
    from onerec_trt.model.hf.loader import is_imported, read_imported_config

    if is_imported(folder):
        return read_imported_config(folder)
    config = ModelConfig.from_dict(read_json(folder / CONFIG, "model config"),
                                   f"model config {folder / CONFIG}")
    if config.num_items < 1:
        raise user_error(f"{folder / CONFIG}: num_items is {config.num_items}",
                         "a model folder's config records its catalogue (1 or more items)")
    return config


def _semantic_ids(folder: Path, config: ModelConfig) -> SemanticIds:
    """The tokenizer, checked against the config (one semantic ID per item, same codebooks)."""
    codes = folder / "semantic_ids.safetensors"
    if codes.is_file():
        safetensors_header(codes)
    if (folder / "tokenizer.json").is_file():
        meta = read_json(folder / "tokenizer.json", "tokenizer metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("codebook_sizes"), list):
            raise user_error(f"{folder / 'tokenizer.json'} has no 'codebook_sizes' list")
    ids = SemanticIds.load(folder)
    if ids.num_items != config.num_items or list(ids.codebook_sizes) != config.codebook_sizes:
        raise user_error(f"the tokenizer in {folder} has {ids.num_items} items and codebooks "
                         f"{list(ids.codebook_sizes)}, {CONFIG} says {config.num_items} and "
                         f"{config.codebook_sizes}", "the files come from different models: "
                                                     "copy the model folder again")
    return ids


def _check_weights(folder: Path, header: dict[str, dict], model: OneRecModel) -> None:
    """The weights file holds exactly the tensors ``config.json`` describes, shape for shape."""
    wanted = {k: list(v.shape) for k, v in model.state_dict().items()}
    problems = [f"{k} is missing" for k in wanted if k not in header]
    problems += [f"{k} is not a weight of this model" for k in header if k not in wanted]
    problems += [f"{k} is {header[k]['shape']} in the weights, {shape} by the config"
                 for k, shape in wanted.items() if k in header and header[k]["shape"] != shape]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise user_error(f"{folder / WEIGHTS} does not match {CONFIG}: {problems[0]}{more}",
                         "the weights and the config come from different models: copy the "
                         "model folder again")


def _read_training(folder: Path) -> dict:
    if not (folder / TRAINING).is_file():
        return {}
    data = read_json(folder / TRAINING, "training record")
    if not isinstance(data, dict):
        raise user_error(f"{folder / TRAINING} is not a JSON object")
    return data


def read_training(path: str | Path) -> dict:
    """A model folder's ``training.json`` without loading the weights ({} where missing)."""
    return json_object(resolve_model_path(path) / TRAINING)


def model_hash(path: str | Path) -> str | None:
    """The weights' hash from the folder's manifest (None if there is no manifest); an
    imported model's manifest records its own (weights, import record, semantic IDs)."""
    manifest = resolve_model_path(path) / MANIFEST
    if not manifest.is_file():
        return None
    data = json.loads(manifest.read_text())
    return data.get("model_sha256") or data.get("files", {}).get(WEIGHTS)

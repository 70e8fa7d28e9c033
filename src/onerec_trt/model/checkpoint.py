"""A model folder: weights (safetensors), config JSON, tokenizer, item vocabulary, manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from onerec_trt.artifacts import MANIFEST, json_object, write_atomic, write_json
from onerec_trt.data.vocab import ItemVocab
from onerec_trt.errors import user_error
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.onerec import OneRecModel
from onerec_trt.model.tokenizer import SemanticIds

SHIPPED = Path(__file__).resolve().parent.parent / "shipped" / "ml-1m-small"
WEIGHTS, CONFIG, VOCAB, TRAINING = "model.safetensors", "config.json", "items.json", "training.json"


@dataclass
class ModelBundle:
    """Everything a stage needs to run a trained model."""

    model: OneRecModel
    config: ModelConfig
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
        from onerec_trt.data.histories import load_histories
        from onerec_trt.data.samplers import training_histories

        length = self.config.max_history
        if file:
            return load_histories(file, length, self.config.num_items), file
        loaded = self.load_data(dataset, data, columns)
        hist = training_histories(loaded.split(), users, length, seed)
        return hist, f"{loaded.name} training split, {len(hist)} users (seed {seed})"


def resolve_model_path(path: str | Path) -> Path:
    """``default`` names the shipped model; anything else is a folder."""
    return SHIPPED if str(path) == "default" else Path(path)


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
                         "pass a folder written by 'onerec-trt train', or 'default'")
    missing = [n for n in (WEIGHTS, CONFIG, VOCAB) if not (folder / n).is_file()]
    if missing:
        raise user_error(f"{folder} is not a model folder: missing {', '.join(missing)}",
                         "pass a folder written by 'onerec-trt train', or 'default'")
    config = ModelConfig.from_dict(json.loads((folder / CONFIG).read_text()))
    ids = SemanticIds.load(folder)
    with torch.device("meta"):
        model = OneRecModel(config)
    model.load_state_dict(read_weights(folder / WEIGHTS, dtype), assign=True)
    model.semantic_ids = ids
    model.eval()
    training = json.loads((folder / TRAINING).read_text()) if (folder / TRAINING).is_file() else {}
    return ModelBundle(model, config, ids, ItemVocab.load(folder / VOCAB), folder, training)


def read_training(path: str | Path) -> dict:
    """A model folder's ``training.json`` without loading the weights ({} where missing)."""
    return json_object(resolve_model_path(path) / TRAINING)


def model_hash(path: str | Path) -> str | None:
    """The weights' hash from the folder's manifest (None if there is no manifest)."""
    manifest = resolve_model_path(path) / MANIFEST
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text()).get("files", {}).get(WEIGHTS)

"""A model folder of any kind: ``load_model`` reads the folder's kind (``model/folder.py``:
native, imported, factory) and calls that kind's loader (``LOADERS``); the native kind
(``onerec-trt train``, ``init``: weights, config, tokenizer, item vocabulary, manifest) is read
and written here."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file

from onerec_trt.artifacts import MANIFEST, json_object, read_json, write_atomic, write_json
from onerec_trt.data.vocab import ItemVocab
from onerec_trt.errors import user_error
from onerec_trt.layout import SHIPPED_MODELS
from onerec_trt.model.bundle import ModelBundle
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.folder import CONFIG, TRAINING, VOCAB, WEIGHTS, folder_kind
from onerec_trt.model.onerec import OneRecModel
from onerec_trt.model.safetensors_file import read_weights, safetensors_header
from onerec_trt.model.tokenizer import SemanticIds

__all__ = ["ModelBundle", "SHIPPED", "CONFIG", "TRAINING", "VOCAB", "WEIGHTS", "load_model",
           "model_hash", "read_config", "read_training", "resolve_model_path", "save_model",
           "safetensors_header"]

SHIPPED = SHIPPED_MODELS["default"]
MODEL_FOLDER = ("pass a folder written by 'onerec-trt train', 'init' or 'import', or a shipped "
                "model: 'default', 'qwen3-ml1m'")


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


def loaders() -> dict[str, Callable[[Path, torch.dtype | None], ModelBundle]]:
    """Each kind of model folder (``folder.KINDS``) -> its loader ``(folder, dtype)``."""
    from onerec_trt.model.hf.factory import load_factory_model
    from onerec_trt.model.hf.loader import load_imported

    return {"native": _load_native, "imported": load_imported, "factory": load_factory_model}


def load_model(path: str | Path, dtype: torch.dtype | None = None) -> ModelBundle:
    """A model folder of any kind (``dtype``: convert the weights while reading them)."""
    folder = resolve_model_path(path)
    if not folder.is_dir():
        raise user_error(f"model folder not found: {folder}",
                         MODEL_FOLDER)
    return loaders()[folder_kind(folder)](folder, dtype)


def _load_native(folder: Path, dtype: torch.dtype | None = None) -> ModelBundle:
    """A folder written by ``onerec-trt train`` or ``init``."""
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
    if folder_kind(folder) != "native":
        from onerec_trt.model.hf.loader import read_imported_config

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

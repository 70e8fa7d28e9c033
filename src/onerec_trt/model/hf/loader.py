"""An imported model folder -> a ``ModelBundle`` whose model is an adapter (or the user's own
protocol object), so every stage takes ``--model`` unchanged."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from onerec_trt.artifacts import json_object
from onerec_trt.data.vocab import ItemVocab
from onerec_trt.errors import user_error
from onerec_trt.model.bundle import ModelBundle
from onerec_trt.model.folder import CHECKPOINT_DIR, FACTORY_JSON, IMPORT_JSON
from onerec_trt.model.hf.record import DAMAGED, ImportRecord
from onerec_trt.model.safetensors_file import safetensors_header
from onerec_trt.model.tokenizer import SemanticIds


@dataclass
class ImportedConfig:
    """What the stages read of a model's config (the OneRec ``ModelConfig`` has the same)."""

    num_items: int
    codebook_sizes: list[int]
    max_history: int
    family: str
    model_type: str

    @property
    def levels(self) -> int:
        return len(self.codebook_sizes)

    def to_dict(self) -> dict:
        return asdict(self)


def read_imported_config(folder: Path) -> ImportedConfig:
    """An imported folder's config without loading the weights (or calling a factory)."""
    from onerec_trt.artifacts import read_json

    if (folder / FACTORY_JSON).is_file():
        record = read_json(folder / FACTORY_JSON, "factory record")
        return ImportedConfig(record["num_items"], record["codebook_sizes"],
                              record["max_history"], "factory", record["factory"])
    record = ImportRecord.load(folder)
    return ImportedConfig(record.num_items, record.codebook_sizes, record.max_history,
                          record.family, record.model_type)


def build_adapter(backbone, record: ImportRecord, ids: SemanticIds) -> torch.nn.Module:
    from onerec_trt.model.hf.decoder_only import DecoderOnlyRecommender
    from onerec_trt.model.hf.encoder_decoder import EncoderDecoderRecommender

    if record.family == "encoder-decoder":
        return EncoderDecoderRecommender(backbone, ids, record.prompt, record.level_ids,
                                         record.max_history, record.decoder_start_id,
                                         record.pad_id).eval()
    return DecoderOnlyRecommender(backbone, ids, record.prompt, record.level_ids,
                                  record.max_history, record.pad_id).eval()


def load_imported(folder: Path, dtype: torch.dtype | None = None) -> ModelBundle:
    """The bundle of an imported folder (``dtype``: the weights' dtype, fp32 by default);
    a factory folder's loader is ``hf.factory.load_factory_model`` (``checkpoint.loaders``)."""
    from onerec_trt.model.hf.families import load_transformers_model, read_checkpoint_config

    record = ImportRecord.load(folder)
    config, family = read_checkpoint_config(folder / CHECKPOINT_DIR)
    _check_record_fits(folder, record, config, family)
    ids = _semantic_ids(folder, record)
    vocab = ItemVocab.load(folder / "items.json")
    if len(vocab) != record.num_items:
        raise user_error(f"{folder}: {IMPORT_JSON} and items.json disagree on the number of "
                         "items", DAMAGED)
    backbone = load_transformers_model(folder / CHECKPOINT_DIR, family, dtype or torch.float32)
    training = json_object(folder / "training.json")
    return ModelBundle(build_adapter(backbone, record, ids), read_imported_config(folder), ids,
                       vocab, folder, training)


def _check_record_fits(folder: Path, record: ImportRecord, config: dict, family) -> None:
    """``import.json`` names the checkpoint's family and only token ids of its vocabulary."""
    if record.model_type != config.get("model_type") or record.family != family.kind:
        raise user_error(f"{folder / IMPORT_JSON} names a {record.model_type} "
                         f"({record.family}), {CHECKPOINT_DIR}/config.json a "
                         f"{config.get('model_type')} ({family.kind})", DAMAGED)
    vocab_size = config["vocab_size"]
    outside = [t for t in record.token_ids() if t >= vocab_size]
    if outside:
        raise user_error(f"{folder / IMPORT_JSON} names token id {outside[0]}, the checkpoint's "
                         f"vocabulary has {vocab_size} tokens", DAMAGED)


def _semantic_ids(folder: Path, record: ImportRecord) -> SemanticIds:
    """The semantic IDs, checked against the record before they are used: one row per item
    (row 0, padding, -1), level t's codes below its code-token count, no two items alike."""
    from safetensors.numpy import load_file

    from onerec_trt.artifacts import read_json

    path = folder / "semantic_ids.safetensors"
    if not path.is_file() or not (folder / "tokenizer.json").is_file():
        raise user_error(f"{folder} has no semantic IDs (semantic_ids.safetensors, "
                         "tokenizer.json)", DAMAGED)
    shape = [record.num_items + 1, len(record.level_ids)]
    entry = safetensors_header(path).get("codes", {})
    if entry.get("dtype") != "I64" or entry.get("shape") != shape:
        raise user_error(f"{path} does not hold the codes of {record.num_items} items in "
                         f"{len(record.level_ids)} levels", DAMAGED)
    meta = read_json(folder / "tokenizer.json", "semantic-ID metadata")
    if not isinstance(meta, dict) or meta.get("codebook_sizes") != record.codebook_sizes:
        raise user_error(f"{folder / 'tokenizer.json'}: the codebook sizes are not "
                         f"{record.codebook_sizes} ({IMPORT_JSON}'s)", DAMAGED)
    codes = load_file(str(path))["codes"]
    limits = np.array([len(level) for level in record.level_ids])
    valid = (codes[0] == -1).all() and ((codes[1:] >= 0) & (codes[1:] < limits)).all()
    if not valid or len(np.unique(codes[1:], axis=0)) != record.num_items:
        raise user_error(f"{path} holds codes outside the catalogue's levels, or two items "
                         "with the same codes", DAMAGED)
    try:
        return SemanticIds.load(folder)
    except (KeyError, TypeError, ValueError) as exc:
        raise user_error(f"{folder / 'tokenizer.json'} is damaged ({exc})", DAMAGED) from None

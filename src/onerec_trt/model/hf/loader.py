"""An imported model folder -> a ``ModelBundle`` whose model is an adapter (or the user's own
protocol object), so every stage takes ``--model`` unchanged."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from onerec_trt.artifacts import json_object
from onerec_trt.data.vocab import ItemVocab
from onerec_trt.errors import user_error
from onerec_trt.model.hf.record import CHECKPOINT_DIR, IMPORT_JSON, ImportRecord
from onerec_trt.model.tokenizer import SemanticIds

FACTORY_JSON = "factory.json"


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


def is_imported(folder: Path) -> bool:
    return (folder / IMPORT_JSON).is_file() or (folder / FACTORY_JSON).is_file()


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


def load_imported(folder: Path, dtype: torch.dtype | None = None):
    """The bundle of an imported folder (``dtype``: the weights' dtype, fp32 by default)."""
    from onerec_trt.model.checkpoint import ModelBundle
    from onerec_trt.model.hf.families import load_transformers_model, read_checkpoint_config

    if (folder / FACTORY_JSON).is_file():
        from onerec_trt.model.hf.factory import load_factory_model

        return load_factory_model(folder, dtype)
    record = ImportRecord.load(folder)
    ids = SemanticIds.load(folder)
    vocab = ItemVocab.load(folder / "items.json")
    if ids.num_items != record.num_items or len(vocab) != record.num_items or \
            ids.codebook_sizes != record.codebook_sizes:
        raise user_error(f"{folder}: {IMPORT_JSON}, the semantic IDs and items.json disagree",
                         "the folder is damaged: import the checkpoint again")
    _, family = read_checkpoint_config(folder / CHECKPOINT_DIR)
    backbone = load_transformers_model(folder / CHECKPOINT_DIR, family, dtype or torch.float32)
    training = json_object(folder / "training.json")
    return ModelBundle(build_adapter(backbone, record, ids), read_imported_config(folder), ids,
                       vocab, folder, training)

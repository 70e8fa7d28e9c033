"""A model folder's file names, and its kind: which loader reads it.

Three kinds of folder hold a model: ``native`` (``onerec-trt train`` or ``init``: weights,
config, tokenizer, vocabulary), ``imported`` (``onerec-trt import --hf``: a transformers
checkpoint and ``import.json``) and ``factory`` (``onerec-trt import --factory``:
``factory.json`` naming the user's function). ``folder_kind`` tells them apart by their marker
file; ``checkpoint.loaders()`` maps each kind to its loader. This module imports nothing of the
model, so every loader can use these names without importing another loader.
"""

from __future__ import annotations

from pathlib import Path

from onerec_trt.layout import TRAINING_JSON

WEIGHTS, CONFIG, VOCAB, TRAINING = "model.safetensors", "config.json", "items.json", TRAINING_JSON
HISTORIES = "histories.npy"  # synthetic requests, for --histories where there are no users
IMPORT_JSON, CHECKPOINT_DIR = "import.json", "hf"
FACTORY_JSON = "factory.json"
KINDS = ("native", "imported", "factory")


def folder_kind(folder: Path) -> str:
    """``factory`` (a ``factory.json``), ``imported`` (an ``import.json``), else ``native``."""
    if (folder / FACTORY_JSON).is_file():
        return "factory"
    if (folder / IMPORT_JSON).is_file():
        return "imported"
    return "native"

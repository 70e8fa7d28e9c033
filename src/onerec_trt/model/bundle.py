"""``ModelBundle``: a loaded model folder, whatever its kind (``model/folder.py``), as every
stage uses it. The loaders (``checkpoint``, ``hf/loader``, ``hf/factory``) and the stages that
make a model (train, init, import) build it; it imports none of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onerec_trt.data.vocab import ItemVocab
from onerec_trt.errors import user_error
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.onerec import OneRecModel
from onerec_trt.model.tokenizer import SemanticIds


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

"""``quantize --qad`` for an imported Qwen3 (``onerec-trt import --hf``, or ``train --arch
qwen3``): its training windows, the next-token logits the KL compares, its student's folder.

The windows are ``train --arch qwen3``'s (``qwen3_data.item_windows``: up to S + 1 items of a
user's training part, rendered as the import record's prompt prefix and item layout, right
padded); the compared distributions are the full-vocabulary next-token distributions at every
position whose next token is a code of a window's item after its first (the positions
``lm_loss`` scores). The student's folder is the teacher's with the checkpoint's safetensors
files rewritten (same tensor names, shapes, dtypes and shards), so every later stage loads it
exactly as it loads the teacher.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from onerec_trt.artifacts import MANIFEST, write_json
from onerec_trt.errors import user_error
from onerec_trt.model.bundle import ModelBundle
from onerec_trt.model.folder import CHECKPOINT_DIR, TRAINING
from onerec_trt.model.hf.loader import read_imported_config
from onerec_trt.model.hf.prompt import CODES
from onerec_trt.model.hf.record import ImportRecord
from onerec_trt.model.hf.weights import weight_files
from onerec_trt.model.hf_import.stage import contract_hash
from onerec_trt.model.safetensors_file import safetensors_header
from onerec_trt.model.train.qwen3 import lm_train_config
from onerec_trt.model.train.qwen3_data import item_windows, length_batches
from onerec_trt.quantize.qad_task import QadTask

SUPPORTED = ("qwen3",)  # imported model types --qad distils
SUPPORTED_TEXT = f"--qad distils native models and imported {', '.join(SUPPORTED)} checkpoints"
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
          "BF16": torch.bfloat16}


def check_family(folder: Path, name: str) -> None:
    """A one-line refusal, before any weight is read, for an imported family --qad does not
    distil."""
    model_type = read_imported_config(folder).model_type
    if model_type not in SUPPORTED:
        raise user_error(f"{SUPPORTED_TEXT}; {name} is an imported {model_type}",
                         "run quantize without --qad")


def render(windows: list[np.ndarray], table: np.ndarray, slots: np.ndarray, prefix: list[int],
           pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded token ids [B, T] (the prompt prefix, then each item's row of ``table``) and
    [B, T] whether a position's next token is a code (``slots``: the code columns of an item
    row) of a window's item after its first: ``qwen3_data.render_windows``' scored targets, for
    any item layout."""
    width, head = table.shape[1], len(prefix)
    longest = head + max(len(w) for w in windows) * width
    ids = np.full((len(windows), longest), pad, dtype=np.int64)
    scored = np.zeros_like(ids, dtype=bool)
    for row, window in enumerate(windows):
        end = head + len(window) * width
        ids[row, :end] = np.concatenate([np.asarray(prefix, dtype=np.int64),
                                         table[window].reshape(-1)])
        scored[row, head + width:end] = np.tile(slots, len(window) - 1)
    predicts = np.zeros_like(scored)
    predicts[:, :-1] = scored[:, 1:]
    return torch.from_numpy(ids), torch.from_numpy(predicts)


def next_token_logits(model: torch.nn.Module, batch) -> list[torch.Tensor]:
    """The adapter's LM at the batch's scored positions; the head runs on those only, as in
    ``qwen3.lm_loss`` (no attention mask: the padding follows the tokens)."""
    ids, predicts = batch
    backbone = model.backbone
    hidden = backbone.model(input_ids=ids, use_cache=False).last_hidden_state
    return [backbone.lm_head(hidden[predicts])]


def imported_task(teacher: ModelBundle, train: list[np.ndarray]) -> QadTask:
    """The distillation of an imported decoder-only teacher on the windows of ``train``."""
    record = ImportRecord.load(teacher.path)
    codes = np.where(teacher.semantic_ids.codes < 0, 0, teacher.semantic_ids.codes)
    table = record.prompt.item_table(codes, record.level_ids, record.pad_id)
    slots = np.concatenate([np.full(len(record.level_ids) if t == CODES else 1, t == CODES)
                            for t in record.prompt.item])
    windows = item_windows(train, record.max_history)
    lengths = np.array([len(w) for w in windows])
    size = lm_train_config().batch_size

    def epoch(idx: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        return [idx[b] for b in length_batches(lengths[idx], size, rng)]

    return QadTask(
        len(windows), size,
        lambda idx: render([windows[i] for i in idx], table, slots, record.prompt.prefix,
                           record.pad_id),
        epoch, next_token_logits, lambda folder, state, training: save_student(
            teacher.path, folder, state, training),
        "KL(teacher || student) of the next-token distributions (full vocabulary) at the "
        "positions that predict code tokens, teacher forcing on training windows")


def save_student(source: Path, folder: Path, state: dict[str, torch.Tensor],
                 training: dict) -> dict:
    """The teacher's folder ``source`` with the student's weights into ``folder``; returns the
    student's hash (the import stage's: weights, import record, semantic IDs) for its
    manifest."""
    weights = weight_files(source / CHECKPOINT_DIR)
    skip = {source / MANIFEST, source / TRAINING, *weights}
    for path in sorted(p for p in source.rglob("*") if p.is_file() and p not in skip):
        target = folder / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    backbone = {k.removeprefix("backbone."): v.detach() for k, v in state.items()
                if k.startswith("backbone.")}
    for path in weights:
        tensors = {name: backbone[name].to(DTYPES[entry["dtype"]]).contiguous()
                   for name, entry in safetensors_header(path).items()}
        target = folder / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(target), metadata={"format": "pt"})
    write_json(folder / TRAINING, training)
    return {"model_sha256": contract_hash(folder)}

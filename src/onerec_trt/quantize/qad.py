"""``quantize --qad MINUTES``: quantization-aware distillation before PTQ, of a native model or
an imported Qwen3 (``qad_hf.py``).

The teacher is the model the ``--onnx`` graphs were exported from (fp32, frozen). The student
is a copy with ModelOpt's FP8 fake quantization on every GEMM but the output heads (amax by max
on training windows, then frozen); it learns the teacher's code distributions (KL from the
teacher's logits to its own at the positions that predict codes, teacher forcing on the model's
training windows: ``QadTask``) for MINUTES of wall time through the one training loop (``fit``).
The best state (validation Recall@10 + NDCG@10 of the FP8 student, beam search) is written
without quantizers as a model folder ``student/`` of the teacher's kind whose training record
holds ``qad`` (the teacher's hash, the settings), then exported to ``student_onnx/``; PTQ (and
``--search``) then run on the student's graphs.
"""

from __future__ import annotations

import copy
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from onerec_trt.artifacts import write_manifest
from onerec_trt.errors import user_error
from onerec_trt.model.bundle import ModelBundle
from onerec_trt.model.checkpoint import (
    load_model,
    model_hash,
    read_training,
    resolve_model_path,
    save_model,
)
from onerec_trt.model.evaluation import evaluate_model
from onerec_trt.model.folder import folder_kind
from onerec_trt.model.generate import Generator
from onerec_trt.model.train.config import TrainConfig
from onerec_trt.model.train.fit import Trainee, fit
from onerec_trt.model.train.fp8_phase import quantize_but_heads
from onerec_trt.model.train.onerec import training_windows
from onerec_trt.quantize.policy import model_policy
from onerec_trt.quantize.qad_hf import SUPPORTED_TEXT, check_family, imported_task
from onerec_trt.quantize.qad_task import QadTask, shuffled

log = logging.getLogger(__name__)

STUDENT, STUDENT_ONNX = "student", "student_onnx"
BATCH = 32  # windows per step, as the native model's training default
LR = 3e-4  # a tenth of training's: the student starts from the teacher's weights
EVAL_USERS, EVAL_BEAM = 300, 10  # validation users the best state is chosen on
HELD_OUT = 64  # training windows never stepped on (at most a tenth): the KL before and after
EVAL_STEPS = 50  # steps between validations (beam search: far slower than a step)
CALIBRATION_BATCHES = 4


@dataclass
class QadResult:
    student: Path  # the student's model folder (inside the staged folder)
    onnx: Path  # its exported graphs
    record: dict  # what training.json's "qad" holds


def native_task(teacher: ModelBundle, train: list[np.ndarray]) -> QadTask:
    """The native model's distillation: its per-level code logits at the windows' real
    positions (``training_windows``, as ``train`` builds them)."""
    from onerec_trt.data import pad_histories

    windows = training_windows(train, teacher.config.max_history)
    codes = torch.from_numpy(np.where(teacher.semantic_ids.codes < 0, 0,
                                      teacher.semantic_ids.codes))

    def batch(idx: np.ndarray):
        length = max(len(windows[i][0]) for i in idx)
        inputs = torch.from_numpy(pad_histories([windows[i][0] for i in idx], length))
        targets = torch.from_numpy(pad_histories([windows[i][1] for i in idx], length))
        return inputs, targets, codes[targets]

    def logits(model: torch.nn.Module, batch) -> list[torch.Tensor]:
        inputs, targets, batch_codes = batch
        levels, _ = model(inputs, batch_codes)
        return [level[targets != 0] for level in levels]

    return QadTask(len(windows), BATCH, batch, shuffled(BATCH), logits,
                   lambda folder, state, training: _save_native(teacher, folder, state,
                                                                training),
                   "KL(teacher || student) of the per-level code distributions, teacher "
                   "forcing on training windows")


def _save_native(teacher: ModelBundle, folder: Path, state: dict[str, torch.Tensor],
                 training: dict) -> dict:
    plain = copy.deepcopy(teacher.model)
    plain.load_state_dict(state)
    save_model(folder, ModelBundle(plain.eval(), teacher.config, teacher.semantic_ids,
                                   teacher.vocab, folder, training))
    policy = model_policy(teacher.path) if teacher.path else None
    if policy:  # the teacher's own FP8 policy applies to its student
        shutil.copyfile(policy, folder / Path(policy).name)
    return {}


def _teacher(opts) -> tuple[ModelBundle, str]:
    """The teacher, fp32 and frozen, and its kind; one-line refusals before any weight is read
    for a kind or family --qad does not distil, or a folder that records no training data."""
    folder = resolve_model_path(opts.model)
    kind = folder_kind(folder)
    if kind == "factory":
        raise user_error(f"{SUPPORTED_TEXT}; {opts.model} is a factory model (your own torch "
                         "code)", "run quantize without --qad")
    if kind == "imported":
        check_family(folder, opts.model)
    if not read_training(folder).get("dataset"):
        raise user_error(f"--qad needs the model's training data; {opts.model} records none",
                         "pass a model trained by 'onerec-trt train', or imported with "
                         "--dataset (its training.json names the data)")
    bundle = load_model(opts.model, torch.float32)
    bundle.model.float().eval().requires_grad_(False)
    return bundle, kind


def _fp8_student(teacher: torch.nn.Module, task: QadTask, calib: list) -> tuple[torch.nn.Module,
                                                                                   list[str],
                                                                                   list[str]]:
    """A copy of ``teacher`` with FP8 fake quantization on every ``nn.Linear`` but the output
    heads, amax calibrated by max on ``calib`` and frozen; -> (student, FP8 layers, bf16
    layers)."""
    student = copy.deepcopy(teacher).requires_grad_(True)
    for mod in student.modules():  # the student matches the teacher's eval-mode outputs
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0

    def calibration_loop() -> None:
        for batch in calib:
            task.logits(student, batch)

    with torch.no_grad():
        student.eval()  # amax by max, then frozen (no recalibration)
        fp8_layers, kept = quantize_but_heads(student, calibration_loop)
    return student, fp8_layers, sorted(kept)


def distill(opts, out: Path, beam: int, topk: int, step: str) -> QadResult:
    """The student of ``opts.model`` after ``opts.qad`` minutes, saved and exported in ``out``."""
    from onerec_trt.export import ExportOptions, export

    started = time.time()
    teacher, kind = _teacher(opts)
    split = teacher.load_data(opts.dataset, opts.data, opts.columns).split()
    rng = np.random.default_rng(opts.seed)
    torch.manual_seed(opts.seed)
    task = (native_task if kind == "native" else imported_task)(teacher, split.train)
    order = rng.permutation(task.windows)
    held_out = min(HELD_OUT, task.windows // 10)
    held, train_idx = order[:held_out], order[held_out:]
    if len(train_idx) < task.batch_size or not held_out:
        raise user_error(f"--qad: {task.windows} training windows are too few to distil on")
    steps_per_epoch = math.ceil(len(train_idx) / task.batch_size)
    held_batch = task.batch(held)
    calib = [task.batch(train_idx[i * task.batch_size:(i + 1) * task.batch_size])
             for i in range(min(CALIBRATION_BATCHES, steps_per_epoch))]
    student, fp8_layers, kept = _fp8_student(teacher.model, task, calib)

    def held_out_kl() -> float:
        with torch.no_grad():
            return float(task.kl(student, teacher.model, held_batch))

    kl_before = held_out_kl()
    eval_idx = np.sort(rng.choice(split.num_users, min(EVAL_USERS, split.num_users),
                                  replace=False))
    eval_hist = [split.train[i] for i in eval_idx]
    generator = Generator(student, EVAL_BEAM, 10)

    def validate() -> dict:
        metrics = evaluate_model(student, eval_hist, split.valid_targets[eval_idx], EVAL_BEAM,
                                 generator=generator)[0]
        return {**metrics, "held_out_kl": held_out_kl()}

    cfg = TrainConfig(epochs=1_000_000, batch_size=task.batch_size, lr=LR, warmup_steps=20,
                      patience=0, max_minutes=opts.qad, seed=opts.seed, budget_flag="--qad",
                      eval_every=math.ceil(EVAL_STEPS / steps_per_epoch))
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=LR,
                            weight_decay=0.0)
    trainee = Trainee(student, opt, steps_per_epoch,
                      lambda: [task.batch(idx) for idx in task.epoch(train_idx, rng)],
                      lambda batch: task.kl(student, teacher.model, batch), validate)
    result = fit(trainee, cfg, time.time(), progress=False)  # MINUTES of distillation
    kl_after = held_out_kl()  # fit left the student in its best state
    teacher_sha = model_hash(opts.model)
    record = {
        "teacher_sha256": teacher_sha, "teacher": str(opts.model), "minutes": opts.qad,
        "steps": result.best_epoch["steps"], "steps_run": result.epochs[-1]["steps"],
        "seconds": time.time() - started, "loss": task.loss,
        "lr": LR, "batch": task.batch_size, "fp8_layers": len(fp8_layers), "bf16_layers": kept,
        "format": "ModelOpt FP8 fake quantization (E4M3, per-tensor, amax by max on "
                  f"{len(calib)} training batches, frozen)",
        "held_out_kl": {"before": kl_before, "after": kl_after,
                        "windows": len(held), "backend": "torch fake quantization"},
        "best_epoch": result.best_epoch,
        "backend": "torch fake quantization (CPU)",
    }
    folder = out / STUDENT
    state = {k: v for k, v in student.state_dict().items() if "_quantizer." not in k}
    identity = task.save(folder, state, {**teacher.training, "qad": record})
    write_manifest(folder, "quantize", {"qad": opts.qad},
                   inputs={"teacher": teacher_sha or ""}, **identity)
    log.info(f"QAD: {record['steps_run']} steps in {record['seconds']:.0f}s, held-out KL "
             f"{kl_before:.4g} -> {kl_after:.4g} (torch fake quantization)")
    export(ExportOptions(model=str(folder), out=str(out / STUDENT_ONNX), beam=beam, topk=topk,
                         step=step))
    return QadResult(folder, out / STUDENT_ONNX, record)

"""``quantize --qad MINUTES``: quantization-aware distillation of a native model before PTQ.

The teacher is the model the ``--onnx`` graphs were exported from (fp32, frozen). The student
is a copy with ModelOpt's FP8 fake quantization on every GEMM but the output heads (amax by max
on training windows, then frozen); it learns the teacher's code distributions (KL from the
teacher's per-level code logits to its own, teacher forcing on the model's training windows)
for MINUTES of wall time through the one training loop (``fit``). The best state (validation
Recall@10 + NDCG@10 of the FP8 student, beam search) is written without quantizers as a model
folder ``student/`` whose ``training.json`` records ``qad`` (the teacher's hash, the settings),
then exported to ``student_onnx/``; PTQ (and ``--search``) then run on the student's graphs.
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
import torch.nn.functional as F

from onerec_trt.artifacts import write_manifest
from onerec_trt.errors import user_error
from onerec_trt.model.bundle import ModelBundle
from onerec_trt.model.checkpoint import load_model, model_hash, save_model
from onerec_trt.model.evaluation import evaluate_model
from onerec_trt.model.folder import folder_kind
from onerec_trt.model.generate import Generator
from onerec_trt.model.train.config import TrainConfig
from onerec_trt.model.train.fit import Trainee, fit
from onerec_trt.model.train.fp8_phase import _fp8_config, _mtq, output_heads
from onerec_trt.model.train.onerec import training_windows
from onerec_trt.quantize.policy import model_policy

log = logging.getLogger(__name__)

STUDENT, STUDENT_ONNX = "student", "student_onnx"
BATCH = 32  # windows per step, as training's default
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


def code_kl(student: torch.nn.Module, teacher: torch.nn.Module, batch) -> torch.Tensor:
    """KL(teacher || student) of the per-level code distributions, summed over levels, mean
    over the windows' real positions (teacher forcing)."""
    inputs, targets, codes = batch
    with torch.no_grad():
        t_logits, _ = teacher(inputs, codes)
    s_logits, _ = student(inputs, codes)
    valid = targets != 0
    return sum(F.kl_div(F.log_softmax(s[valid].float(), -1), F.log_softmax(t[valid].float(), -1),
                        log_target=True, reduction="batchmean")
               for s, t in zip(s_logits, t_logits, strict=True))


def _windows_batch(windows, idx, codes: torch.Tensor):
    from onerec_trt.data import pad_histories

    length = max(len(windows[i][0]) for i in idx)
    inputs = torch.from_numpy(pad_histories([windows[i][0] for i in idx], length))
    targets = torch.from_numpy(pad_histories([windows[i][1] for i in idx], length))
    return inputs, targets, codes[targets]


def _teacher(opts) -> ModelBundle:
    from onerec_trt.model.checkpoint import resolve_model_path

    kind = folder_kind(resolve_model_path(opts.model))
    if kind != "native":
        raise user_error(f"--qad distils native models; {opts.model} is {kind}",
                         "run quantize without --qad for imported models")
    bundle = load_model(opts.model, torch.float32)
    bundle.model.float().eval().requires_grad_(False)
    return bundle


def distill(opts, out: Path, beam: int, topk: int, step: str) -> QadResult:
    """The student of ``opts.model`` after ``opts.qad`` minutes, saved and exported in ``out``."""
    from onerec_trt.export import ExportOptions, export

    started = time.time()
    teacher = _teacher(opts)
    if not teacher.dataset:
        raise user_error(f"--qad needs the model's training data; {opts.model} records none",
                         "pass a model trained by 'onerec-trt train' (its training.json names "
                         "the data)")
    split = teacher.load_data(opts.dataset, opts.data, opts.columns).split()
    rng = np.random.default_rng(opts.seed)
    torch.manual_seed(opts.seed)
    windows = training_windows(split.train, teacher.config.max_history)
    order = rng.permutation(len(windows))
    held_out = min(HELD_OUT, len(windows) // 10)
    held, train_idx = order[:held_out], order[held_out:]
    if len(train_idx) < BATCH:
        raise user_error(f"--qad: {len(windows)} training windows are too few to distil on")
    codes = torch.from_numpy(np.where(teacher.semantic_ids.codes < 0, 0,
                                      teacher.semantic_ids.codes))
    steps_per_epoch = math.ceil(len(train_idx) / BATCH)
    held_batch = _windows_batch(windows, held, codes)

    student = copy.deepcopy(teacher.model).requires_grad_(True)
    for mod in student.modules():  # the student matches the teacher's eval-mode outputs
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    plain = copy.deepcopy(teacher.model)
    calib = [_windows_batch(windows, train_idx[i * BATCH:(i + 1) * BATCH], codes)
             for i in range(min(CALIBRATION_BATCHES, steps_per_epoch))]
    kept = set(output_heads(student))

    def calibration_loop(model) -> None:
        for inputs, _, batch_codes in calib:
            model(inputs, batch_codes)

    with torch.no_grad():
        student.eval()
        _mtq().quantize(student, _fp8_config(), calibration_loop)  # amax by max, then frozen
    fp8_layers = []
    for name, mod in student.named_modules():
        if isinstance(mod, torch.nn.Linear) and hasattr(mod, "weight_quantizer"):
            if name in kept:
                mod.input_quantizer.disable()
                mod.weight_quantizer.disable()
            else:
                fp8_layers.append(name)
    with torch.no_grad():
        kl_before = float(code_kl(student, teacher.model, held_batch))

    eval_idx = np.sort(rng.choice(split.num_users, min(EVAL_USERS, split.num_users),
                                  replace=False))
    eval_hist = [split.train[i] for i in eval_idx]
    generator = Generator(student, EVAL_BEAM, 10)

    def batches():
        perm = train_idx[rng.permutation(len(train_idx))]
        return [_windows_batch(windows, perm[i * BATCH:(i + 1) * BATCH], codes)
                for i in range(steps_per_epoch)]

    def validate() -> dict:
        metrics = evaluate_model(student, eval_hist, split.valid_targets[eval_idx], EVAL_BEAM,
                                 generator=generator)[0]
        with torch.no_grad():
            metrics["held_out_kl"] = float(code_kl(student, teacher.model, held_batch))
        return metrics

    cfg = TrainConfig(epochs=1_000_000, batch_size=BATCH, lr=LR, warmup_steps=20, patience=0,
                      max_minutes=opts.qad, seed=opts.seed,
                      eval_every=math.ceil(EVAL_STEPS / steps_per_epoch))
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=LR,
                            weight_decay=0.0)
    trainee = Trainee(student, opt, steps_per_epoch, batches,
                      lambda batch: code_kl(student, teacher.model, batch), validate)
    result = fit(trainee, cfg, time.time(), progress=False)  # MINUTES of distillation
    with torch.no_grad():  # fit left the student in its best state
        kl_after = float(code_kl(student, teacher.model, held_batch))
    state = {k: v for k, v in student.state_dict().items() if "_quantizer." not in k}
    plain.load_state_dict(state)
    teacher_sha = model_hash(opts.model)
    record = {
        "teacher_sha256": teacher_sha, "teacher": str(opts.model), "minutes": opts.qad,
        "steps": result.best_epoch["steps"], "steps_run": result.epochs[-1]["steps"],
        "seconds": time.time() - started, "loss": "KL(teacher || student) of the per-level code "
        "distributions, teacher forcing on training windows",
        "lr": LR, "batch": BATCH, "fp8_layers": len(fp8_layers), "bf16_layers": sorted(kept),
        "format": "ModelOpt FP8 fake quantization (E4M3, per-tensor, amax by max on "
                  f"{len(calib)} training batches, frozen)",
        "held_out_kl": {"before": kl_before, "after": kl_after,
                        "windows": len(held), "backend": "torch fake quantization"},
        "best_epoch": result.best_epoch,
        "backend": "torch fake quantization (CPU)",
    }
    training = {**teacher.training, "qad": record}
    folder = out / STUDENT
    save_model(folder, ModelBundle(plain.eval(), teacher.config, teacher.semantic_ids,
                                   teacher.vocab, folder, training))
    policy = model_policy(teacher.path) if teacher.path else None
    if policy:  # the teacher's own FP8 policy applies to its student
        shutil.copyfile(policy, folder / Path(policy).name)
    write_manifest(folder, "quantize", {"qad": opts.qad},
                   inputs={"teacher": teacher_sha or ""})
    log.info(f"QAD: {record['steps_run']} steps in {record['seconds']:.0f}s, held-out code KL "
             f"{kl_before:.4g} -> {kl_after:.4g} (torch fake quantization)")
    export(ExportOptions(model=str(folder), out=str(out / STUDENT_ONNX), beam=beam, topk=topk,
                         step=step))
    return QadResult(folder, out / STUDENT_ONNX, record)

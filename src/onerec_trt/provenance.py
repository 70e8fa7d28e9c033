"""Which model an artifact was made from, and the one check that two artifacts agree on it.

Every stage records the model's weights hash: ``export.json`` (``model_sha256``), and every
folder's ``manifest.json`` (``inputs.model``). A stage that takes an artifact and a model, or
two artifacts, calls ``check_same_model`` before any work, so mixing models costs one line.

A distilled student (``quantize --qad``) is a new model whose ``training.json`` records its
teacher (``qad.teacher_sha256``): the FP8 graphs of a ``quantize --qad`` folder, made from the
student (``OUT/student``), count as made from the teacher too, so verify compares them with the
teacher's bf16 reference graph.
"""

from __future__ import annotations

from pathlib import Path

from onerec_trt.artifacts import json_object
from onerec_trt.errors import user_error
from onerec_trt.layout import EXPORT_JSON, MANIFEST, TRAINING_JSON

STUDENT = "student"  # quantize --qad's student model folder, inside its output folder
WEIGHTS = "model.safetensors"  # a native model folder's weights (model/folder.py's WEIGHTS)


def recorded_model(artifact: str | Path) -> str | None:
    """The model hash recorded for a stage folder, or for the folder holding a file; None
    where nothing records it."""
    path = Path(artifact)
    folder = path if path.is_dir() else path.parent
    found = json_object(folder / EXPORT_JSON).get("model_sha256")
    if not found:
        inputs = json_object(folder / MANIFEST).get("inputs", {})
        found = inputs.get("model") if isinstance(inputs, dict) else None
    return found or None


def recorded_teacher(artifact: str | Path) -> tuple[str, str] | None:
    """(student hash, teacher hash) where the folder holding ``artifact`` has a ``quantize
    --qad`` student whose record names its teacher; None elsewhere."""
    path = Path(artifact)
    folder = (path if path.is_dir() else path.parent) / STUDENT
    qad = json_object(folder / TRAINING_JSON).get("qad")
    teacher = qad.get("teacher_sha256") if isinstance(qad, dict) else None
    manifest = json_object(folder / MANIFEST)
    files = manifest.get("files")
    student = manifest.get("model_sha256") or (files.get(WEIGHTS)
                                               if isinstance(files, dict) else None)
    if isinstance(teacher, str) and teacher and student:
        return student, teacher
    return None


def check_same_model(recorded: str | None, wanted: str | None, what: str,
                     fix: str = "export and quantize this model first",
                     artifact: str | Path | None = None) -> None:
    """A user error when both hashes are known and differ (``what`` names the artifact); an
    ``artifact`` made from a ``quantize --qad`` student of ``wanted`` passes."""
    if recorded and wanted and recorded != wanted:
        if artifact is not None and recorded_teacher(artifact) == (recorded, wanted):
            return
        raise user_error(f"{what} was made from another model (hash {recorded[:12]}, --model "
                         f"has {wanted[:12]})", fix)

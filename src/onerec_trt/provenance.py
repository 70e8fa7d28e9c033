"""Which model an artifact was made from, and the one check that two artifacts agree on it.

Every stage records the model's weights hash: ``export.json`` (``model_sha256``), and every
folder's ``manifest.json`` (``inputs.model``). A stage that takes an artifact and a model, or
two artifacts, calls ``check_same_model`` before any work, so mixing models costs one line.
"""

from __future__ import annotations

from pathlib import Path

from onerec_trt.artifacts import json_object
from onerec_trt.errors import user_error
from onerec_trt.layout import EXPORT_JSON, MANIFEST


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


def check_same_model(recorded: str | None, wanted: str | None, what: str,
                     fix: str = "export and quantize this model first") -> None:
    """A user error when both hashes are known and differ (``what`` names the artifact)."""
    if recorded and wanted and recorded != wanted:
        raise user_error(f"{what} was made from another model (hash {recorded[:12]}, --model "
                         f"has {wanted[:12]})", fix)

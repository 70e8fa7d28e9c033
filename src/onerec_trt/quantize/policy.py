"""An FP8 policy: which GEMMs stay bf16, and the calibration that scales the rest.

``quantize --search`` writes one (``fp8_policy.json`` in its output, and under ``"policy"`` in
``quantize_report.json``) with what it was chosen on; ``quantize --policy FILE`` (either file)
applies it again, so the search is reproducible from the report. A model folder may carry its
own ``fp8_policy.json``: quantize uses it by default (the shipped model does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from onerec_trt.artifacts import read_json, write_json
from onerec_trt.errors import user_error

POLICY_JSON = "fp8_policy.json"
CALIB_METHODS = ("max", "mse")  # ModelOpt's per-tensor FP8 calibration algorithms
# How GEMM weights are scaled: one scale per tensor (ModelOpt's FP8 default), or one per output
# feature (ModelOpt's ``"axis": 0``; a 1-D scale in the weight's DequantizeLinear, which
# onnx-tensorrt reads as per-channel). Inputs stay per-tensor either way.
WEIGHT_SCALES = ("per-tensor", "per-channel")


@dataclass
class Policy:
    """bf16_layers: nn.Linear names kept in bf16 (every other GEMM is FP8); calibration: the
    ModelOpt algorithm that sets the FP8 scales; chosen: how the search chose it (split, users,
    target, measured overlap@10 and FP8 FLOP share), empty for a hand-written policy;
    weight_scales: per-tensor or per-channel (one scale per output feature) FP8 weights."""

    bf16_layers: list[str]
    calibration: str = "max"
    chosen: dict = field(default_factory=dict)
    weight_scales: str = "per-tensor"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object, where: str) -> Policy:
        if isinstance(data, dict) and isinstance(data.get("policy"), dict):
            data = data["policy"]  # a quantize_report.json
        fix = ("pass an fp8_policy.json or a quantize_report.json written by "
               "'onerec-trt quantize --search'")
        if not isinstance(data, dict) or not isinstance(data.get("bf16_layers"), list):
            raise user_error(f"{where} is not an FP8 policy (no 'bf16_layers' list)", fix)
        layers = data["bf16_layers"]
        if not all(isinstance(name, str) for name in layers):
            raise user_error(f"{where}: 'bf16_layers' must list layer names", fix)
        method = data.get("calibration", "max")
        if method not in CALIB_METHODS:
            raise user_error(f"{where}: unknown calibration {method!r}",
                             f"one of: {', '.join(CALIB_METHODS)}")
        scales = data.get("weight_scales", "per-tensor")
        if scales not in WEIGHT_SCALES:
            raise user_error(f"{where}: unknown weight_scales {scales!r}",
                             f"one of: {', '.join(WEIGHT_SCALES)}")
        chosen = data.get("chosen") or {}
        return cls(sorted(set(layers)), method, chosen if isinstance(chosen, dict) else {},
                   scales)

    def check_layers(self, layers: list[str], where: str) -> None:
        """Every named layer must exist in the model: a policy for another model is refused."""
        unknown = sorted(set(self.bf16_layers) - set(layers))
        if unknown:
            raise user_error(f"{where} names {len(unknown)} layer(s) this model does not have, "
                             f"e.g. {unknown[0]!r}",
                             "the policy was made for another model: run quantize --search")

    def reasons(self, where: str) -> dict[str, str]:
        why = f"FP8 policy {where}"
        if self.chosen:
            why += (f" (chosen on {self.chosen.get('users')} {self.chosen.get('split')} users "
                    f"for overlap@10 >= {self.chosen.get('target_overlap')})")
        return {name: why for name in self.bf16_layers}


def read_policy(path: str | Path) -> Policy:
    return Policy.from_json(read_json(path, "FP8 policy"), str(path))


def model_policy(model_folder: Path) -> Path | None:
    """The model folder's own policy file, if it has one."""
    path = model_folder / POLICY_JSON
    return path if path.is_file() else None


def write_policy(path: Path, policy: Policy) -> None:
    write_json(path, policy.to_json())


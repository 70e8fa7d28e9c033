"""Model configuration: one flat dataclass, named presets in JSON (``presets/<name>.json``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from onerec_trt.errors import UserError, user_error

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass
class ModelConfig:
    # catalogue and tokenizer (filled in from the data and the tokenizer at training time)
    num_items: int = 0  # model item ids are 1..num_items, 0 is padding
    codebook_sizes: list[int] = field(default_factory=lambda: [256, 256, 256])
    # context processor
    max_history: int = 200  # S: the last S items of a user's history, left-padded
    d_model: int = 64
    n_heads: int = 2
    n_kv_heads: int = 1  # grouped-query heads of the context keys/values
    context_layers: int = 2
    # lazy decoder
    decoder_layers: int = 2
    kv_group_size: int = 2  # consecutive decoder layers sharing one context K/V set
    ffn_hidden: int = 256  # SwiGLU hidden width
    moe_experts: int = 0  # 0 = dense SwiGLU FFN; >0 = mixture of experts with top-k routing
    moe_top_k: int = 2
    dropout: float = 0.2
    # training: weight of an auxiliary next-item softmax on the context processor's states
    # (tied to the item embeddings); it speeds up learning of the context, generation ignores it
    aux_item_loss: float = 1.0

    def __post_init__(self) -> None:
        _check_types(self)
        _check_ranges(self)
        if self.d_model % self.n_heads:
            raise user_error(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise user_error(f"n_heads {self.n_heads} is not a multiple of n_kv_heads "
                             f"{self.n_kv_heads}")
        if self.moe_experts and not 0 < self.moe_top_k <= self.moe_experts:
            raise user_error(f"moe_top_k must be in 1..moe_experts ({self.moe_experts})")

    @property
    def levels(self) -> int:
        return len(self.codebook_sizes)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_groups(self) -> int:
        return -(-self.decoder_layers // self.kv_group_size)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "model config") -> ModelConfig:
        if not isinstance(data, dict):
            raise user_error(f"{where} is not a JSON object (it holds a {_json_type(data)})",
                             "expected {\"num_items\": ..., \"d_model\": ..., ...}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in set(data) - known - {"preset", "comment"})
        if unknown:
            raise user_error(f"unknown model config key(s): {', '.join(unknown)}")
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except UserError as exc:  # name the file the bad value came from
            message = str(exc).partition("\nNote: ")[0]
            raise UserError(f"{where}: {message}", exc.note) from None

    @classmethod
    def from_preset(cls, name: str, **overrides) -> ModelConfig:
        path = PRESET_DIR / f"{name}.json"
        if not path.is_file():
            raise user_error(f"unknown preset {name!r}", f"expected one of: {', '.join(presets())}")
        return cls.from_dict({**json.loads(path.read_text()), **overrides})


# fields that must be at least 1 (num_items is 0 in a preset until the data fills it in)
POSITIVE = ("max_history", "d_model", "n_heads", "n_kv_heads", "decoder_layers",
            "kv_group_size", "ffn_hidden")


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "list",
             dict: "object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_types(cfg: ModelConfig) -> None:
    """Each field has its default's type (a float field takes an integer too)."""
    for f in fields(cfg):
        value, default = getattr(cfg, f.name), f.default
        if f.name == "codebook_sizes":
            ok = isinstance(value, list) and bool(value) and all(_is_int(v) for v in value)
            want = "a non-empty list of integers"
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            want = "a number"
        else:
            ok, want = _is_int(value), "an integer"
        if not ok:
            raise user_error(f"{f.name} must be {want}, got {value!r}")


def _check_ranges(cfg: ModelConfig) -> None:
    for name in POSITIVE:
        if getattr(cfg, name) < 1:
            raise user_error(f"{name} must be at least 1, got {getattr(cfg, name)}")
    for name in ("num_items", "context_layers", "moe_experts"):
        if getattr(cfg, name) < 0:
            raise user_error(f"{name} must not be negative, got {getattr(cfg, name)}")
    if any(size < 1 for size in cfg.codebook_sizes):
        raise user_error(f"codebook_sizes must be at least 1 each, got {cfg.codebook_sizes}")
    if not 0 <= cfg.dropout < 1:
        raise user_error(f"dropout must be in [0, 1), got {cfg.dropout}")


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))

"""Model configuration: one flat dataclass, named presets in JSON (``presets/<name>.json``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from onerec_trt.errors import user_error

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
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"preset", "comment"})
        if unknown:
            raise user_error(f"unknown model config key(s): {', '.join(unknown)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_preset(cls, name: str, **overrides) -> ModelConfig:
        path = PRESET_DIR / f"{name}.json"
        if not path.is_file():
            raise user_error(f"unknown preset {name!r}", f"expected one of: {', '.join(presets())}")
        return cls.from_dict({**json.loads(path.read_text()), **overrides})


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))

"""``import.json``: what an imported model folder holds besides the checkpoint (``hf/``) and the
semantic IDs: the family, the prompt template as token ids, each level's code token ids."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from onerec_trt.artifacts import read_json, write_json
from onerec_trt.errors import user_error
from onerec_trt.model.folder import CHECKPOINT_DIR, IMPORT_JSON
from onerec_trt.model.hf.prompt import CODES, Prompt

__all__ = ["CHECKPOINT_DIR", "DAMAGED", "IMPORT_JSON", "ImportRecord"]


@dataclass
class ImportRecord:
    family: str  # "decoder-only" or "encoder-decoder"
    model_type: str  # transformers' model_type: qwen3, qwen2, llama, t5
    transformers_class: str
    prompt: Prompt
    level_ids: list[list[int]]  # level t's code c is token level_ids[t][c]
    max_history: int  # S: history items a prompt holds
    num_items: int
    pad_id: int = 0
    decoder_start_id: int | None = None  # encoder-decoder only
    source: str = ""  # where the checkpoint was imported from
    scoring: str = "full-vocabulary log-softmax (transformers' beam scores)"
    extra: dict = field(default_factory=dict)

    @property
    def codebook_sizes(self) -> list[int]:
        """Each level's codes plus one: the last is the rest of the vocabulary."""
        return [len(ids) + 1 for ids in self.level_ids]

    def save(self, folder: Path) -> None:
        data = asdict(self)
        data["prompt"] = self.prompt.to_dict()
        write_json(folder / IMPORT_JSON, data)

    @classmethod
    def load(cls, folder: Path) -> ImportRecord:
        path = folder / IMPORT_JSON
        data = read_json(path, "import record")
        problem = _problem(data)
        if problem:
            raise user_error(f"{path} is not an import record ({problem})", DAMAGED)
        try:
            data["prompt"] = Prompt.from_dict(data["prompt"])
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise user_error(f"{path} is not an import record ({exc})", DAMAGED) from None

    def token_ids(self) -> list[int]:
        """Every token id the record names: prompt tokens, code tokens, padding, start."""
        p = self.prompt
        ids = [*p.prefix, *(t for t in p.item if t != CODES), *p.suffix, self.pad_id]
        ids += [t for level in self.level_ids for t in level]
        return ids + ([] if self.decoder_start_id is None else [self.decoder_start_id])


DAMAGED = "the folder is damaged: import the checkpoint again"


def _ints(value: object, low: int = 0) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= low for v in value)


def _problem(data: object) -> str | None:
    """What makes ``import.json``'s data unusable (types and signs), or None."""
    if not isinstance(data, dict):
        return "not a JSON object"
    prompt, levels = data.get("prompt"), data.get("level_ids")
    checks = {
        "family": data.get("family") in ("decoder-only", "encoder-decoder"),
        "model_type": isinstance(data.get("model_type"), str),
        "max_history": _ints([data.get("max_history")], 1),
        "num_items": _ints([data.get("num_items")], 1),
        "pad_id": _ints([data.get("pad_id", 0)]),
        "decoder_start_id": _ints([data.get("decoder_start_id")]) or (
            data.get("decoder_start_id") is None and data.get("family") == "decoder-only"),
        "level_ids": isinstance(levels, list) and bool(levels) and all(
            _ints(level) and level for level in levels),
        "prompt": isinstance(prompt, dict) and all(
            _ints(prompt.get(k)) for k in ("prefix_ids", "suffix_ids")) and _ints(
            prompt.get("item_layout"), CODES) and prompt["item_layout"].count(CODES) == 1,
    }
    bad = [key for key, ok in checks.items() if not ok]
    return f"{bad[0]} is missing or malformed" if bad else None

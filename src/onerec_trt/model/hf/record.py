"""``import.json``: what an imported model folder holds besides the checkpoint (``hf/``) and the
semantic IDs: the family, the prompt template as token ids, each level's code token ids."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from onerec_trt.artifacts import read_json, write_json
from onerec_trt.errors import user_error
from onerec_trt.model.hf.prompt import Prompt

IMPORT_JSON, CHECKPOINT_DIR = "import.json", "hf"


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
        try:
            data["prompt"] = Prompt.from_dict(data["prompt"])
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise user_error(f"{path} is not an import record ({exc})",
                             "the folder is damaged: import the checkpoint again") from None

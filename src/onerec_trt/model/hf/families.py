"""Which transformers checkpoints can be imported, read without running any of their code.

A checkpoint is a folder with ``config.json``, safetensors weights and ``tokenizer.json``. Its
``model_type`` picks a transformers class from the table below; a checkpoint that names its own
code (``auto_map``: transformers' ``trust_remote_code``) is refused, so no code from a checkpoint
is ever executed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from onerec_trt.errors import user_error


@dataclass(frozen=True)
class Family:
    kind: str  # "decoder-only" or "encoder-decoder"
    transformers_class: str


FAMILIES = {
    "qwen3": Family("decoder-only", "Qwen3ForCausalLM"),
    "qwen2": Family("decoder-only", "Qwen2ForCausalLM"),
    "llama": Family("decoder-only", "LlamaForCausalLM"),
    "t5": Family("encoder-decoder", "T5ForConditionalGeneration"),
}
CHECKPOINT = "a transformers checkpoint folder: config.json, *.safetensors, tokenizer.json"


def read_checkpoint_config(folder: str | Path) -> tuple[dict, Family]:
    """``config.json`` and the family it names; user errors for anything not importable."""
    folder = Path(folder)
    if not folder.is_dir():
        raise user_error(f"checkpoint folder not found: {folder}", CHECKPOINT)
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise user_error(f"{folder} has no config.json", CHECKPOINT) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise user_error(f"{path} is not valid JSON ({exc})", CHECKPOINT) from None
    if not isinstance(config, dict):
        raise user_error(f"{path} is not a JSON object", CHECKPOINT)
    if "auto_map" in config or config.get("trust_remote_code"):
        raise user_error(f"{folder} asks for trust_remote_code (its config.json names its own "
                         "code in 'auto_map'): refused, no code from a checkpoint is executed",
                         f"import a checkpoint of a built-in transformers class "
                         f"({', '.join(FAMILIES)}), or write a protocol factory (docs/byom.md)")
    kind = config.get("model_type")
    if kind not in FAMILIES:
        raise user_error(f"unsupported architecture {kind!r} in {path}",
                         f"supported: {', '.join(FAMILIES)}; or write a protocol factory "
                         "(docs/byom.md)")
    _check_attention(config, path)
    if not any(folder.glob("*.safetensors")):
        raise user_error(f"{folder} has no .safetensors weights", "pickled weights (.bin) are "
                                                                  "not loaded: convert them to "
                                                                  "safetensors")
    if not (folder / "tokenizer.json").is_file():
        raise user_error(f"{folder} has no tokenizer.json", "save the tokenizer with a fast "
                                                            "tokenizer (tokenizer.json)")
    return config, FAMILIES[kind]


def _check_attention(config: dict, path: Path) -> None:
    """Sliding-window layers are not supported: the adapters attend to the whole prompt."""
    sliding = config.get("use_sliding_window") or "sliding_attention" in (
        config.get("layer_types") or [])
    if sliding:
        raise user_error(f"{path}: sliding-window attention is not supported",
                         "set use_sliding_window to false (the prompts are short)")
    rope = config.get("rope_scaling") or {}
    if isinstance(rope, dict) and rope.get("rope_type", rope.get("type")) == "dynamic":
        raise user_error(f"{path}: dynamic RoPE scaling is not supported (its frequencies "
                         "change with the sequence length)")


def load_transformers_model(folder: str | Path, family: Family, dtype):
    """The checkpoint as its transformers class (weights in ``dtype``), in eval mode."""
    import transformers

    cls = getattr(transformers, family.transformers_class)
    try:
        model = cls.from_pretrained(str(folder), dtype=dtype, trust_remote_code=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise user_error(f"transformers could not load {folder}: {str(exc).splitlines()[0]}",
                         CHECKPOINT) from None
    return model.eval()


def load_tokenizer(folder: str | Path):
    """The checkpoint's ``tokenizer.json`` (the tokenizers library: no code is run)."""
    from tokenizers import Tokenizer

    path = Path(folder) / "tokenizer.json"
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # the library raises a bare Exception for a malformed file
        raise user_error(f"{path} is not a tokenizers file ({exc})", CHECKPOINT) from None

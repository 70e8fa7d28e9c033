"""Which transformers checkpoints can be imported, read without running any of their code.

A checkpoint is a folder with ``config.json``, safetensors weights and ``tokenizer.json``. Its
``model_type`` picks a transformers class from the table below; a checkpoint that names its own
code (``auto_map``: transformers' ``trust_remote_code``) is refused, so no code from a checkpoint
is ever executed.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from onerec_trt.errors import user_error
from onerec_trt.model.hf.config_checks import asks_for_code, check_config_values
from onerec_trt.model.hf.weights import weight_files


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
    if asks_for_code(config):
        raise user_error(f"{folder} asks for trust_remote_code (its config.json names its own "
                         "code in 'auto_map'): refused, no code from a checkpoint is executed",
                         f"import a checkpoint of a built-in transformers class "
                         f"({', '.join(FAMILIES)}), or write a protocol factory (docs/byom.md)")
    kind = config.get("model_type")
    if not isinstance(kind, str) or kind not in FAMILIES:
        raise user_error(f"unsupported architecture {kind!r} in {path}",
                         f"supported: {', '.join(FAMILIES)}; or write a protocol factory "
                         "(docs/byom.md)")
    _check_attention(config, path)
    check_config_values(config, path)
    weight_files(folder)
    if not (folder / "tokenizer.json").is_file():
        raise user_error(f"{folder} has no tokenizer.json", "save the tokenizer with a fast "
                                                            "tokenizer (tokenizer.json)")
    return config, FAMILIES[kind]


def _check_attention(config: dict, path: Path) -> None:
    """Sliding-window layers are not supported: the adapters attend to the whole prompt."""
    layers = config.get("layer_types") or []
    sliding = config.get("use_sliding_window") or (
        "sliding_attention" in layers if isinstance(layers, list) else True)
    if sliding:
        raise user_error(f"{path}: sliding-window attention is not supported",
                         "set use_sliding_window to false (the prompts are short)")
    rope = config.get("rope_scaling") or {}
    if isinstance(rope, dict) and rope.get("rope_type", rope.get("type")) == "dynamic":
        raise user_error(f"{path}: dynamic RoPE scaling is not supported (its frequencies "
                         "change with the sequence length)")


def load_transformers_model(folder: str | Path, family: Family, dtype):
    """The checkpoint as its transformers class (weights in ``dtype``), in eval mode; a user
    error unless every weight of the class came from the checkpoint and every tensor of the
    checkpoint was used (transformers would otherwise fill the gaps at random)."""
    import transformers

    cls = getattr(transformers, family.transformers_class)
    with _quiet_and_seeded():
        try:
            model, info = cls.from_pretrained(str(folder), dtype=dtype, trust_remote_code=False,
                                              use_safetensors=True, output_loading_info=True,
                                              ignore_mismatched_sizes=True)  # reported, refused
        except Exception as exc:  # noqa: BLE001 - any failure of the loader on the user's files
            raise user_error(f"transformers could not load {folder}: {_summary(exc)}",
                             CHECKPOINT) from None
    _check_loading_info(Path(folder), family, info)
    return model.eval()


def _summary(error: object) -> str:
    """An error's first line (and the next, where the first only introduces it)."""
    lines = [x.strip() for x in str(error).splitlines() if x.strip()] or [type(error).__name__]
    return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]


@contextmanager
def _quiet_and_seeded():
    """transformers' load report and progress bar off (a refusal is one line), and the RNG
    seeded, so loading is the same at every call; the caller's RNG state is restored."""
    import torch
    from transformers.utils import logging

    verbosity, bar = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            yield
    finally:
        logging.set_verbosity(verbosity)
        if bar:
            logging.enable_progress_bar()


def _check_loading_info(folder: Path, family: Family, info: dict) -> None:
    """Refuse a checkpoint that is not exactly the class's weights (a tied LM head is not
    missing: transformers ties it and does not list it)."""
    problems = [f"{k} is missing" for k in sorted(info.get("missing_keys") or ())]
    problems += [f"{k} is not a weight of {family.transformers_class}"
                 for k in sorted(info.get("unexpected_keys") or ())]
    problems += [f"{key} is {list(theirs)} in the checkpoint, {list(ours)} by its config.json"
                 for key, theirs, ours in sorted(info.get("mismatched_keys") or ())]
    problems += [_summary(m) for m in info.get("error_msgs") or ()]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise user_error(f"the weights in {folder} are not a {family.transformers_class}: "
                         f"{problems[0]}{more}", "transformers would fill the gaps with random "
                                                 "weights: import the complete checkpoint, with "
                                                 "the config.json it was saved with")


def load_tokenizer(folder: str | Path):
    """The checkpoint's ``tokenizer.json`` (the tokenizers library: no code is run)."""
    from tokenizers import Tokenizer

    path = Path(folder) / "tokenizer.json"
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # the library raises a bare Exception for a malformed file
        raise user_error(f"{path} is not a tokenizers file ({exc})", CHECKPOINT) from None

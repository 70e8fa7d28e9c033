"""The values of a checkpoint's ``config.json`` that transformers would otherwise trip over with
a traceback (or act on): checked before any class is built."""

from __future__ import annotations

from pathlib import Path

from onerec_trt.errors import user_error

# sizes the supported classes read; each, where present, a positive integer
SIZES = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
         "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings",
         "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
         "relative_attention_num_buckets", "relative_attention_max_distance")
TOKEN_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id")


def asks_for_code(value: object) -> bool:
    """An ``auto_map`` or ``trust_remote_code`` anywhere in the config, nested configs too."""
    if isinstance(value, dict):
        if "auto_map" in value or value.get("trust_remote_code"):
            return True
        return any(asks_for_code(v) for v in value.values())
    if isinstance(value, list):
        return any(asks_for_code(v) for v in value)
    return False


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:40]}..."


def check_config_values(config: dict, path: Path) -> None:
    """Quantized checkpoints refused; sizes positive integers; token ids inside the
    vocabulary."""
    if "quantization_config" in config:
        raise user_error(f"{path}: a quantized checkpoint (quantization_config) is not supported",
                         "import the unquantized weights: onerec-trt quantizes to FP8 itself")
    vocab = config.get("vocab_size")
    if not (_is_int(vocab) and vocab > 0):
        raise user_error(f"{path}: vocab_size is {_shown(vocab)}, not a positive integer")
    for key in SIZES:
        value = config.get(key)
        if key in config and value is not None and not (_is_int(value) and value > 0):
            raise user_error(f"{path}: {key} is {_shown(value)}, not a positive integer")
    for key in TOKEN_IDS:
        values = config.get(key)
        for value in values if isinstance(values, list) else [values]:
            if value is None or (key == "pad_token_id" and _is_int(value) and value < 0):
                continue  # no such token (a negative pad id: none)
            if not _is_int(value) or not 0 <= value < vocab:
                raise user_error(f"{path}: {key} is {_shown(value)}, not a token id (the "
                                 f"vocabulary has {vocab} tokens)")

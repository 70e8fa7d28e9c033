"""Tiny transformers checkpoints with OpenOneRec-style itemic tokens, made with transformers
(random weights): what the import tests bring in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from onerec_trt.model.hf.itemic import code_token, itemic_vocabulary, write_itemic_tokenizer

SIZES = [8, 8, 8]


def catalogue_rows(items: int, seed: int = 0) -> list[tuple[str, str]]:
    """``items`` random distinct 3-level codes, written as code tokens; item ids 1000, 1001..."""
    rng = np.random.default_rng(seed)
    picks = rng.permutation(int(np.prod(SIZES)))[:items]
    rows = []
    for i, flat in enumerate(picks.tolist()):
        codes = np.unravel_index(flat, SIZES)
        rows.append((str(1000 + i), "".join(code_token(t, int(c)) for t, c in enumerate(codes))))
    return rows


def write_catalogue(path: Path, rows: list[tuple[str, str]], header="item_id\tcodes") -> Path:
    path.write_text("\n".join([header, *("\t".join(r) for r in rows)]) + "\n")
    return path


CAUSAL_LMS = {"qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
              "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
              "llama": ("LlamaConfig", "LlamaForCausalLM")}


def tiny_causal_lm(folder: Path, kind: str, items: int = 60, seed: int = 0,
                   **config) -> tuple[Path, Path]:
    """A 2-layer causal LM (qwen3, qwen2, llama) whose vocabulary is itemic tokens, and its
    catalogue."""
    import transformers

    config_class, model_class = (getattr(transformers, n) for n in CAUSAL_LMS[kind])
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tokens = itemic_vocabulary(SIZES)
    write_itemic_tokenizer(folder, tokens)
    extra = {"attention_bias": True} if kind == "llama" else {}  # Qwen2 has q/k/v biases
    config = {"tie_word_embeddings": True, **extra, **config}
    cfg = config_class(vocab_size=len(tokens), hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       head_dim=8, max_position_embeddings=512, initializer_range=0.2,
                       pad_token_id=0, **config)
    model_class(cfg).save_pretrained(folder)
    return folder, write_catalogue(folder.parent / f"{folder.name}.tsv",
                                   catalogue_rows(items, seed))


def tiny_qwen3(folder: Path, items: int = 60, seed: int = 0, **config) -> tuple[Path, Path]:
    """A 2-layer Qwen3 with OpenOneRec-style itemic tokens, and its catalogue."""
    return tiny_causal_lm(folder, "qwen3", items, seed, **config)


def tiny_t5(folder: Path, items: int = 60, seed: int = 0) -> tuple[Path, Path]:
    """A 2+2-layer T5 (TIGER style: codes in, codes out) and its catalogue."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tokens = itemic_vocabulary(SIZES, extra=("</s>",))
    write_itemic_tokenizer(folder, tokens)
    cfg = T5Config(vocab_size=len(tokens), d_model=32, d_kv=8, d_ff=64, num_layers=2,
                   num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=8,
                   relative_attention_max_distance=20, feed_forward_proj="gated-gelu",
                   pad_token_id=0, eos_token_id=tokens.index("</s>"), decoder_start_token_id=0)
    T5ForConditionalGeneration(cfg).save_pretrained(folder)
    return folder, write_catalogue(folder.parent / f"{folder.name}.tsv",
                                   catalogue_rows(items, seed))


def onerec_factory():
    """A protocol factory (``--factory hf_checkpoints:onerec_factory``): the project's own tiny
    model, standing in for a user's torch code."""
    from helpers import tiny_model

    model = tiny_model(num_items=30, codebook=4)
    model.max_history = model.cfg.max_history
    return model


def not_a_recommender():
    """A factory whose object does not implement the protocol."""
    return torch.nn.Linear(2, 2)


def rewrite_weights(folder: Path, keep) -> None:
    """Rewrite ``folder/model.safetensors`` with only the tensors ``keep(name)`` accepts (a new
    file: an imported folder's weights are hard links to the checkpoint's)."""
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    tensors = load_file(path)
    path.unlink()
    save_file({k: v for k, v in tensors.items() if keep(k)}, path, metadata={"format": "pt"})


def edit_json(path: Path, change) -> None:
    """Apply ``change(data)`` to a JSON file in place."""
    import json

    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))

"""A word-level tokenizer whose vocabulary is itemic tokens, OpenOneRec style: an item is
``<|sid_begin|><s_a_N><s_b_N><s_c_N><|sid_end|>``. The shape of the vocabulary a generative
recommender adds to an LLM's; what the trained ``qwen3-ml1m`` and the tests' checkpoints use."""

from __future__ import annotations

from pathlib import Path

from onerec_trt.artifacts import write_atomic

PAD, BEGIN, END, UNK = "<pad>", "<|sid_begin|>", "<|sid_end|>", "<unk>"
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def code_token(level: int, code: int) -> str:
    """``<s_a_5>``: the token of code 5 at level 0."""
    return f"<s_{LETTERS[level]}_{code}>"


def itemic_vocabulary(codebook_sizes: list[int], extra: tuple[str, ...] = ()) -> list[str]:
    """pad, unk, begin, end, then ``extra`` tokens, then every level's code tokens in order."""
    tokens = [PAD, UNK, BEGIN, END, *extra]
    tokens += [code_token(t, c) for t, size in enumerate(codebook_sizes) for c in range(size)]
    return tokens


def write_itemic_tokenizer(folder: str | Path, tokens: list[str]) -> Path:
    """``tokenizer.json`` (the tokenizers library's format) with one id per token, in order;
    anything between angle brackets is one token."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"<[^<>]*>"), behavior="isolated")
    path = Path(folder) / "tokenizer.json"
    write_atomic(path, lambda tmp: tokenizer.save(str(tmp)))
    return path

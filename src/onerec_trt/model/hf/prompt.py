"""The prompt template: how a user's history becomes the token sequence an imported model reads.

``template`` holds ``{history}`` once, with literal text around it (``{history}<|sid_begin|>``);
``item_template`` holds ``{codes}`` once (``<|sid_begin|>{codes}<|sid_end|>``): each history
item, oldest first, is written as its code tokens with the literal tokens around them. Literal
text is tokenized with the checkpoint's tokenizer; bracketed tokens (``<|sid_begin|>``) must be
tokens of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onerec_trt.errors import user_error
from onerec_trt.model.hf.catalogue import BRACKETED

CODES = -1  # a code slot in an item's layout


@dataclass
class Prompt:
    """The template as token ids: ``prefix`` + each history item's ``item`` layout (CODES marks
    where the item's codes go) + ``suffix``."""

    prefix: list[int]
    item: list[int]
    suffix: list[int]
    template: str
    item_template: str

    def to_dict(self) -> dict:
        return {"template": self.template, "item_template": self.item_template,
                "prefix_ids": self.prefix, "item_layout": self.item, "suffix_ids": self.suffix}

    @classmethod
    def from_dict(cls, data: dict) -> Prompt:
        return cls(list(data["prefix_ids"]), list(data["item_layout"]), list(data["suffix_ids"]),
                   data["template"], data["item_template"])

    def item_table(self, codes: np.ndarray, level_ids: list[list[int]], pad: int) -> np.ndarray:
        """[N + 1, T] the token ids of every model item (row 0, padding: ``pad``)."""
        levels = codes.shape[1]
        width = sum(levels if t == CODES else 1 for t in self.item)
        table = np.full((len(codes), width), pad, dtype=np.int64)
        code_tokens = np.stack([np.asarray(level_ids[t])[codes[1:, t]] for t in range(levels)],
                               axis=1)  # [N, L]
        col = 0
        for t in self.item:
            if t == CODES:
                table[1:, col:col + levels] = code_tokens
                col += levels
            else:
                table[1:, col] = t
                col += 1
        return table

    def render(self, history: np.ndarray, table: np.ndarray) -> list[int]:
        """One user's prompt (no padding): the oracle's input."""
        items = [table[i].tolist() for i in history if i > 0]
        return self.prefix + [t for row in items for t in row] + self.suffix


def parse_prompt(template: str, item_template: str, tokenizer) -> Prompt:
    """Both templates as token ids (``tokenizer``: a ``tokenizers.Tokenizer``)."""
    if template.count("{history}") != 1:
        raise user_error(f"--template {template!r} must hold {{history}} exactly once")
    if item_template.count("{codes}") != 1:
        raise user_error(f"--item-template {item_template!r} must hold {{codes}} exactly once")
    before, after = template.split("{history}")
    head, tail = item_template.split("{codes}")
    item = _tokens(head, tokenizer, "--item-template") + [CODES] + \
        _tokens(tail, tokenizer, "--item-template")
    return Prompt(_tokens(before, tokenizer, "--template"), item,
                  _tokens(after, tokenizer, "--template"), template, item_template)


def _tokens(text: str, tokenizer, option: str) -> list[int]:
    """Literal template text as token ids; bracketed pieces must each be one known token."""
    ids: list[int] = []
    pos = 0
    for match in BRACKETED.finditer(text):
        ids += _plain(text[pos:match.start()], tokenizer)
        token = tokenizer.token_to_id(match.group())
        if token is None:
            raise user_error(f"{option}: {match.group()} is not a token of the checkpoint's "
                             "tokenizer", "use tokens the tokenizer knows (tokenizer.json)")
        ids.append(token)
        pos = match.end()
    return ids + _plain(text[pos:], tokenizer)


def _plain(text: str, tokenizer) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids if text else []


def default_templates(family: str, has_token) -> tuple[str, str]:
    """The documented defaults: decoder-only: the history's item tokens, oldest first, then the
    begin-of-item token (where the tokenizer has ``<|sid_begin|>``; items are wrapped in
    ``<|sid_begin|>``/``<|sid_end|>`` where it has both); encoder-decoder: the history's codes,
    then ``</s>`` where the tokenizer has it."""
    if family == "encoder-decoder":
        return ("{history}</s>" if has_token("</s>") else "{history}"), "{codes}"
    begin, end = has_token("<|sid_begin|>"), has_token("<|sid_end|>")
    item = "<|sid_begin|>{codes}<|sid_end|>" if begin and end else "{codes}"
    return ("{history}<|sid_begin|>" if begin else "{history}"), item

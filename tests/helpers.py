"""Shared builders for tests: tiny synthetic catalogues and models (no big data, seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from onerec_trt.model.config import ModelConfig
from onerec_trt.model.onerec import OneRecModel
from onerec_trt.model.tokenizer import TokenizerConfig, fit_semantic_ids

REPO = Path(__file__).resolve().parents[1]
BEAUTY = REPO.parent / "shared" / "data" / "amazon-beauty" / "Beauty.txt"


def tiny_semantic_ids(num_items: int = 40, codebook: int = 4, levels: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((num_items + 1, 8)).astype(np.float32)
    return fit_semantic_ids(emb, TokenizerConfig(levels=levels, codebook_size=codebook,
                                                 seed=seed))


def tiny_model(num_items: int = 40, codebook: int = 4, seed: int = 0, **overrides) -> OneRecModel:
    ids = tiny_semantic_ids(num_items, codebook, seed=seed)
    torch.manual_seed(seed)
    cfg = ModelConfig.from_preset("tiny", num_items=num_items,
                                  codebook_sizes=list(ids.codebook_sizes), **overrides)
    model = OneRecModel(cfg, ids)
    for p in model.parameters():  # larger weights than the init, so scores differ clearly
        torch.nn.init.normal_(p, std=0.5)
    return model.eval()


def random_histories(n: int, length: int, num_items: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    hist = torch.randint(1, num_items + 1, (n, length), generator=g)
    lengths = torch.randint(1, length + 1, (n,), generator=g)
    pad = torch.arange(length)[None, :] < (length - lengths)[:, None]
    return hist.masked_fill(pad, 0)


def write_sequences(path: Path, users: int = 60, items: int = 30, seed: int = 0,
                    max_step: int = 2) -> Path:
    """A learnable sequence file: each user walks the catalogue in steps of 1..max_step."""
    rng = np.random.default_rng(seed)
    lines = []
    for u in range(users):
        pos = int(rng.integers(items))
        seq = []
        for _ in range(int(rng.integers(6, 14))):
            seq.append(f"item{pos}")
            pos = (pos + int(rng.integers(1, max_step + 1))) % items
        lines.append(f"user{u} " + " ".join(seq))
    path.write_text("\n".join(lines) + "\n")
    return path


def write(folder: Path, name: str, text: str | bytes) -> Path:
    """A file ``folder/name`` holding ``text`` (bytes as given, str as UTF-8)."""
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every table a Markdown parser (markdown-it-py, GFM tables) finds in ``text``: its rows
    (the header first) as lists of cell texts."""
    import pytest

    markdown_it = pytest.importorskip("markdown_it")
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(text)
    tables, row = [], None
    for i, token in enumerate(tokens):
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            row = []
            tables[-1].append(row)
        elif token.type in ("th_open", "td_open"):
            row.append(tokens[i + 1].content if tokens[i + 1].type == "inline" else "")
    return tables


def has_tensorrt() -> bool:
    """Whether TensorRT's Python package imports here (never on the development machines)."""
    try:
        import tensorrt  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


HAS_TRT = has_tensorrt()

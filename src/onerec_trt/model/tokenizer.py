"""Semantic-ID tokenizer: item embeddings -> residual k-means (RQ-KMeans) codes -> prefix trie.

Item embeddings come from the training interactions only: a truncated SVD of the PPMI-weighted
item-item co-occurrence matrix (window +-5 in the training sequences). Unique codes: by default
the last level is assigned uniquely within each prefix (greedy nearest free centroid, a balanced
assignment that keeps L levels); ``disambiguation="extra"`` appends a TIGER-style extra level
(the item's rank among the items sharing its codes) instead, and is used automatically when a
prefix holds more items than the last codebook has codes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file
from scipy.sparse.linalg import svds

from onerec_trt.artifacts import write_atomic, write_json
from onerec_trt.errors import user_error
from onerec_trt.model.kmeans import kmeans, nearest
from onerec_trt.model.trie import Trie


@dataclass
class TokenizerConfig:
    levels: int = 3
    codebook_size: int = 256
    embedding_dim: int = 64
    window: int = 5  # co-occurrence window in the training sequences
    disambiguation: str = "last"  # "last" (unique last level) or "extra" (an extra level)
    kmeans_iters: int = 25
    seed: int = 0


@dataclass
class SemanticIds:
    """codes[i] = the semantic ID of model item i (row 0, padding, is -1)."""

    codes: np.ndarray  # [num_items + 1, L] int64
    codebook_sizes: list[int]
    stats: dict = field(default_factory=dict)
    config: TokenizerConfig = field(default_factory=TokenizerConfig)
    trie: Trie = field(init=False, repr=False)

    def __post_init__(self) -> None:
        items = np.arange(1, len(self.codes), dtype=np.int64)
        self.trie = Trie.from_codes(self.codes[1:], items, self.codebook_sizes)

    @property
    def levels(self) -> int:
        return len(self.codebook_sizes)

    @property
    def num_items(self) -> int:
        return len(self.codes) - 1

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        write_atomic(folder / "semantic_ids.safetensors",
                     lambda tmp: save_file({"codes": np.ascontiguousarray(self.codes)}, str(tmp)))
        write_json(folder / "tokenizer.json", {"codebook_sizes": self.codebook_sizes,
                                               "config": asdict(self.config), "stats": self.stats})

    @classmethod
    def load(cls, folder: str | Path) -> SemanticIds:
        folder = Path(folder)
        meta_path, codes_path = folder / "tokenizer.json", folder / "semantic_ids.safetensors"
        if not meta_path.is_file() or not codes_path.is_file():
            raise user_error(f"no semantic-ID tokenizer in {folder}",
                             "expected tokenizer.json and semantic_ids.safetensors")
        meta = json.loads(meta_path.read_text())
        return cls(load_file(str(codes_path))["codes"], list(meta["codebook_sizes"]),
                   meta.get("stats", {}), TokenizerConfig(**meta.get("config", {})))


def item_embeddings(train: list[np.ndarray], num_items: int, dim: int, window: int,
                    seed: int) -> np.ndarray:
    """[num_items + 1, dim] SVD embeddings of the PPMI item co-occurrence (row 0 unused)."""
    rows, cols = [], []
    for seq in train:
        for off in range(1, window + 1):
            if len(seq) > off:
                rows.append(seq[:-off])
                cols.append(seq[off:])
    r, c = np.concatenate(rows), np.concatenate(cols)
    n = num_items + 1
    co = sp.coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n)).tocsr()
    co = (co + co.T).tocoo()
    total = co.data.sum()
    marg = np.asarray(co.sum(1)).ravel()
    pmi = np.log(co.data * total / (marg[co.row] * marg[co.col]))
    keep = pmi > 0
    ppmi = sp.csr_matrix((pmi[keep], (co.row[keep], co.col[keep])), shape=(n, n))
    k = min(dim, n - 2)
    rng = np.random.default_rng(seed)
    if ppmi.nnz == 0:  # no pair co-occurs above chance (tiny data): nothing for an SVD to find
        emb = rng.standard_normal((n, k))
    else:
        u, s, _ = svds(ppmi, k=k, v0=rng.standard_normal(n))
        emb = u[:, ::-1] * np.sqrt(s[::-1])
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return (emb / np.maximum(norms, 1e-12)).astype(np.float32)


def fit_semantic_ids(embeddings: np.ndarray, cfg: TokenizerConfig) -> SemanticIds:
    """RQ-KMeans over item embeddings [num_items + 1, d] (row 0 = padding, ignored)."""
    rng = np.random.default_rng(cfg.seed)
    residual = embeddings[1:].astype(np.float32).copy()
    levels = []
    centroids = None
    for _ in range(cfg.levels):
        centroids, assign = kmeans(residual, cfg.codebook_size, rng, cfg.kmeans_iters)
        levels.append(assign)
        residual -= centroids[assign]
    codes = np.stack(levels, axis=1).astype(np.int64)
    stats = code_stats(codes, cfg.codebook_size)
    sizes = [cfg.codebook_size] * cfg.levels
    mode = cfg.disambiguation
    if mode == "last" and stats["largest_prefix_group"] > cfg.codebook_size:
        mode = "extra"  # a prefix holds more items than the last level has codes
    if mode == "last":
        residual += centroids[codes[:, -1]]  # the residual before the last level
        codes[:, -1] = _unique_last_level(codes, residual, centroids)
    elif mode == "extra":
        extra = _rank_within_duplicates(codes)
        codes = np.concatenate([codes, extra[:, None]], axis=1)
        sizes.append(int(extra.max()) + 1)
    else:
        raise user_error(f"unknown disambiguation {mode!r}", "expected 'last' or 'extra'")
    stats["disambiguation"] = mode
    stats["after"] = code_stats(codes, sizes[-1])
    full = np.concatenate([np.full((1, codes.shape[1]), -1, np.int64), codes])
    return SemanticIds(full, sizes, stats, cfg)


def code_stats(codes: np.ndarray, codebook_size: int) -> dict:
    """Codebook utilisation and collisions of a code matrix [n, L]."""
    levels = codes.shape[1]
    used = [int(len(np.unique(codes[:, lvl]))) for lvl in range(levels)]
    prefixes = [int(len(np.unique(codes[:, : lvl + 1], axis=0))) for lvl in range(levels)]
    _, counts = np.unique(codes[:, :-1], axis=0, return_counts=True)
    _, full_counts = np.unique(codes, axis=0, return_counts=True)
    return {
        "items": int(len(codes)),
        "codes_used_per_level": used,
        "utilisation_per_level": [u / codebook_size for u in used],
        "distinct_prefixes_per_level": prefixes,
        "items_in_collisions": int(full_counts[full_counts > 1].sum()),
        "largest_collision": int(full_counts.max()),
        "largest_prefix_group": int(counts.max()) if levels > 1 else int(len(codes)),
    }


def _unique_last_level(codes: np.ndarray, residual: np.ndarray,
                       centroids: np.ndarray) -> np.ndarray:
    """Give the items of each (L-1)-prefix distinct last codes: nearest free centroid, the items
    with the closest match choosing first."""
    last = codes[:, -1].copy()
    _, group, counts = np.unique(codes[:, :-1], axis=0, return_inverse=True, return_counts=True)
    group = group.ravel()
    _, full_counts = np.unique(np.column_stack([group, last]), axis=0, return_counts=True)
    if full_counts.max() == 1:
        return last
    for g in np.flatnonzero(counts > 1):
        members = np.flatnonzero(group == g)
        d = ((residual[members, None, :] - centroids[None]) ** 2).sum(-1)  # [m, k]
        taken = np.zeros(len(centroids), dtype=bool)
        for pos in np.argsort(d.min(1), kind="stable"):
            choice = np.flatnonzero(~taken)[np.argmin(d[pos, ~taken])]
            taken[choice] = True
            last[members[pos]] = choice
    return last


def _rank_within_duplicates(codes: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... among items that share all codes (in item order)."""
    _, inverse = np.unique(codes, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    sorted_inv = inverse[order]
    start = np.r_[0, np.flatnonzero(np.diff(sorted_inv)) + 1]
    rank_sorted = np.arange(len(codes)) - np.repeat(start, np.diff(np.r_[start, len(codes)]))
    rank = np.empty(len(codes), dtype=np.int64)
    rank[order] = rank_sorted
    return rank


def build_tokenizer(train: list[np.ndarray], num_items: int, cfg: TokenizerConfig) -> SemanticIds:
    """The tokenizer stage: embeddings from the training part only, then RQ-KMeans codes."""
    emb = item_embeddings(train, num_items, cfg.embedding_dim, cfg.window, cfg.seed)
    return fit_semantic_ids(emb, cfg)


__all__ = ["build_tokenizer", "SemanticIds", "TokenizerConfig", "nearest"]

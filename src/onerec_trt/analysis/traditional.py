"""A classic ranking model for comparison: DCN-v2 (Wang et al., 2021; parallel cross + deep
networks over concatenated feature embeddings) trained for 'liked' (rating >= 4) prediction on
MovieLens-1M with user (id, age, gender, occupation, zip), item (id = title, year) and genre
features.

Trained here, in the analyze stage, with a fixed seed and a fixed number of steps (no cache:
about 20-50 s on one CPU thread), on a seeded 95 % of the ratings; the other 5 % give the test AUC
and log-loss (so the model is known to have learned) and the real inputs its activations are
measured on.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onerec_trt.analysis.capture import LinearInputs
from onerec_trt.analysis.movielens import RatingsTable, load_ratings
from onerec_trt.analysis.profile import ModelProfile, profile_model
from onerec_trt.progress import progress_bar

FIELDS = ("user", "item", "age", "gender", "occupation", "zip", "year")


@dataclass
class TraditionalConfig:
    embedding_dim: int = 16
    cross_layers: int = 3
    hidden: tuple[int, ...] = (256, 128)
    steps: int = 1500
    batch_size: int = 1024
    lr: float = 2e-3
    test_share: float = 0.05
    seed: int = 0


class DCN(nn.Module):
    def __init__(self, cardinality: dict[str, int], cfg: TraditionalConfig):
        super().__init__()
        dim = cfg.embedding_dim
        self.emb = nn.ModuleDict({f: nn.Embedding(cardinality[f], dim) for f in FIELDS})
        self.genres = nn.EmbeddingBag(cardinality["genres"], dim, mode="mean", padding_idx=0)
        width = dim * (len(FIELDS) + 1)
        self.cross = nn.ModuleList(nn.Linear(width, width) for _ in range(cfg.cross_layers))
        deep, last = [], width
        for h in cfg.hidden:
            deep += [nn.Linear(last, h), nn.ReLU()]
            last = h
        self.deep = nn.Sequential(*deep)
        self.out = nn.Linear(width + last, 1)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        x0 = torch.cat([self.emb[f](feats[f]) for f in FIELDS]
                       + [self.genres(feats["genres"])], dim=-1)
        x = x0
        for layer in self.cross:  # DCN-v2 cross layer: x_{l+1} = x0 * (W x_l + b) + x_l
            x = x0 * layer(x) + x
        return self.out(torch.cat([x, self.deep(x0)], dim=-1)).squeeze(-1)


def _tensors(table: RatingsTable, rows: np.ndarray) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in table.features(rows).items()}


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (rank statistic, ties averaged)."""
    from scipy.stats import rankdata

    pos = labels.astype(bool)
    ranks = rankdata(scores)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def train_traditional(table: RatingsTable, cfg: TraditionalConfig, progress: bool = True
                      ) -> tuple[DCN, dict, np.ndarray]:
    """Train the DCN on one thread (its ops are tiny: a second thread only adds sync cost,
    7x slower on a busy 2-core machine); returns (model, training report, test rows)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(table, cfg, progress)
    finally:
        torch.set_num_threads(threads)


def _train(table: RatingsTable, cfg: TraditionalConfig, progress: bool
           ) -> tuple[DCN, dict, np.ndarray]:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(table.rating))
    n_test = int(len(order) * cfg.test_share)
    test, train = order[:n_test], order[n_test:]
    labels = torch.from_numpy((table.rating >= 4).astype(np.float32))
    model = DCN(table.cardinality, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    t0 = time.perf_counter()
    losses = []
    for step in progress_bar(range(cfg.steps), desc="traditional (DCN) training", unit="step",
                             leave=False, disable=not progress):
        start = (step * cfg.batch_size) % len(train)
        rows = train[start:start + cfg.batch_size]
        loss = F.binary_cross_entropy_with_logits(model(_tensors(table, rows)),
                                                  labels[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(_tensors(table, test[i:i + 65536]))
                            for i in range(0, len(test), 65536)])
    y = labels[test]
    report = {
        "config": asdict(cfg), "seconds": time.perf_counter() - t0,
        "train_ratings": int(len(train)), "test_ratings": int(len(test)),
        "target": "liked = rating >= 4", "positive_share": float(y.mean()),
        "epochs": cfg.steps * cfg.batch_size / len(train),
        "final_train_loss": float(np.mean(losses[-100:])),
        "test_logloss": float(F.binary_cross_entropy_with_logits(logits, y)),
        "test_auc": auc(y.numpy(), logits.numpy()),
    }
    return model, report, test


def profile_traditional(cfg: TraditionalConfig, samples: int, max_rows: int,
                        progress: bool = True, table: RatingsTable | None = None) -> ModelProfile:
    table = table or load_ratings()
    model, report, test = train_traditional(table, cfg, progress)
    rows = np.sort(np.random.default_rng(cfg.seed + 1).choice(test, min(samples, len(test)),
                                                               replace=False))
    with LinearInputs(model, max_rows, cfg.seed) as cap, torch.no_grad():
        model(_tensors(table, rows))
    params = sum(p.numel() for p in model.parameters())
    description = (f"DCN-v2 ranking model ({params:,} parameters: {len(FIELDS)} embedding "
                   f"tables + genre bag, {cfg.cross_layers} cross layers, MLP {cfg.hidden}), "
                   "trained here on MovieLens-1M 'liked' labels")
    profile = profile_model("traditional", description, model, cap.inputs(), cap.rows_seen,
                            progress, cfg.seed)
    profile.info = {"parameters": int(params), "training": report,
                    "activation_data": {"source": "MovieLens-1M held-out ratings (user, item) "
                                                  "with their features", "rows": int(len(rows))}}
    return profile

import numpy as np
import torch

from helpers import write_sequences
from onerec_trt.data import load_dataset
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.folder import load_model, save_model
from onerec_trt.model.generate import beam_search
from onerec_trt.model.tokenizer import TokenizerConfig
from onerec_trt.model.train import TrainConfig, train, training_windows


def _train_tiny(path, seed=0, steps=6):
    data = load_dataset("sequences", path)
    cfg = TrainConfig(epochs=1, max_steps=steps, batch_size=8, eval_users=20, eval_beam=10,
                      seed=seed)
    return train(data, ModelConfig.from_preset("tiny"),
                 TokenizerConfig(codebook_size=4, embedding_dim=8, seed=seed), cfg,
                 progress=False, log=lambda *_: None)


def test_training_is_deterministic_for_a_seed(tmp_path):
    path = write_sequences(tmp_path / "seq.txt")
    a, b = _train_tiny(path), _train_tiny(path)
    c = _train_tiny(path, seed=1)
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values(),
                              strict=True):
        assert torch.equal(pa, pb), name
    assert np.array_equal(a.semantic_ids.codes, b.semantic_ids.codes)
    assert not torch.equal(a.model.context.item_emb.weight, c.model.context.item_emb.weight)


def test_training_windows_cover_every_position_once():
    seq = np.arange(1, 12)  # 11 items: 10 next-item targets
    windows = training_windows([seq], 4)
    targets = np.concatenate([t for _, t in windows])
    assert sorted(targets.tolist()) == list(range(2, 12))
    for inputs, target in windows:
        assert np.array_equal(inputs + 1, target) and len(inputs) <= 4


def test_model_folder_round_trip(tmp_path):
    bundle = _train_tiny(write_sequences(tmp_path / "seq.txt"))
    save_model(tmp_path / "model", bundle)
    loaded = load_model(tmp_path / "model")
    hist = torch.tensor([[0, 0, 3, 4, 5]])
    a = beam_search(bundle.model.eval(), hist, 10, 10)
    b = beam_search(loaded.model, hist, 10, 10)
    assert np.array_equal(a.items, b.items) and np.allclose(a.scores, b.scores)
    assert loaded.vocab.tokens == bundle.vocab.tokens
    assert loaded.dataset == "sequences"

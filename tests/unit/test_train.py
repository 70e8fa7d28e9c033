import re

import numpy as np
import pytest
import torch

from helpers import write_sequences
from onerec_trt.data import load_dataset
from onerec_trt.errors import UserError
from onerec_trt.model.checkpoint import load_model, save_model
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.generate import beam_search
from onerec_trt.model.onerec import OneRecModel, PrefixEmbedding
from onerec_trt.model.tokenizer import TokenizerConfig
from onerec_trt.model.train.onerec import train, training_windows
from onerec_trt.model.train.stage import TrainConfig


def _train_tiny(path, seed=0, steps=6, **options):
    data = load_dataset("sequences", path)
    cfg = TrainConfig(epochs=1, max_steps=steps, batch_size=8, eval_users=20, eval_beam=10,
                      seed=seed, **options)
    return train(data, ModelConfig.from_preset("tiny"),
                 TokenizerConfig(codebook_size=4, embedding_dim=8, seed=seed), cfg,
                 progress=False)


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


def test_prefix_inputs_fold_into_the_item_embeddings():
    codes = np.array([[-1, -1, -1], [0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]])
    cfg = ModelConfig.from_preset("tiny", num_items=4, codebook_sizes=[2, 2, 2])
    model = OneRecModel(cfg).eval()
    model.context.prefix_inputs = PrefixEmbedding(codes, cfg.d_model)
    ids = model.context.prefix_inputs.prefix_ids.numpy()
    # level-1 prefixes (0,), (1,); level-2 prefixes (0,0), (0,1), (1,0); row 0 is padding
    assert ids.tolist() == [[0, 0], [1, 1], [1, 1], [1, 2], [2, 3]]
    extra = model.context.prefix_inputs.table()
    assert torch.equal(extra[0], torch.zeros(cfg.d_model))
    assert torch.equal(extra[1], extra[2]) and not torch.equal(extra[1], extra[3])
    history = torch.tensor([[0, 1, 2, 3], [4, 3, 2, 1]])
    before = model.context.states(history), model.item_logits(model.context.states(history))
    model.context.fold_prefix_inputs()
    after = model.context.states(history), model.item_logits(model.context.states(history))
    assert model.context.prefix_inputs is None
    assert torch.allclose(before[0], after[0], atol=1e-6)
    assert torch.allclose(before[1], after[1], atol=1e-6)


def test_training_with_prefix_inputs_saves_a_plain_model(tmp_path):
    bundle = _train_tiny(write_sequences(tmp_path / "seq.txt"), prefix_inputs=True)
    assert bundle.model.context.prefix_inputs is None
    plain = _train_tiny(write_sequences(tmp_path / "seq.txt"))
    assert not torch.equal(bundle.model.context.item_emb.weight,
                           plain.model.context.item_emb.weight)
    save_model(tmp_path / "model", bundle)
    loaded = load_model(tmp_path / "model")
    assert set(loaded.model.state_dict()) == set(plain.model.state_dict())
    hist = torch.tensor([[0, 0, 3, 4, 5]])
    a = beam_search(bundle.model.eval(), hist, 10, 10)
    b = beam_search(loaded.model, hist, 10, 10)
    assert np.array_equal(a.items, b.items)


def test_distillation_changes_training_but_not_the_model_shape(tmp_path):
    path = write_sequences(tmp_path / "seq.txt")
    plain, distilled = _train_tiny(path), _train_tiny(path, distill=1.0)
    assert set(plain.model.state_dict()) == set(distilled.model.state_dict())
    assert not torch.equal(plain.model.heads[0].weight, distilled.model.heads[0].weight)


def test_patience_zero_runs_the_whole_schedule(tmp_path):
    """With a zero learning rate no epoch improves on the first: patience 1 stops after the
    second epoch, patience 0 never stops early."""
    path = write_sequences(tmp_path / "seq.txt")
    data = load_dataset("sequences", path)

    def epochs_run(patience: int) -> int:
        cfg = TrainConfig(epochs=3, max_steps=None, batch_size=64, lr=0.0, eval_users=10,
                          eval_beam=10, patience=patience)
        bundle = train(data, ModelConfig.from_preset("tiny"),
                       TokenizerConfig(codebook_size=4, embedding_dim=8), cfg,
                       progress=False)
        return len(bundle.training["epochs"])

    assert epochs_run(1) == 2
    assert epochs_run(0) == 3


# --- degenerate data: refused up front, or trained (issue 28 item 17) -------------------------


@pytest.mark.parametrize("lines, found", [
    (["u1 a a a", "u2 a a a"], "sequences has 1 item(s) and 2 user(s), 0 with more than 3"),
    (["u1 a a a a", "u2 a a a a"], "sequences has 1 item(s) and 2 user(s), 2 with more than 3"),
    ([f"u{i} a b c" for i in range(10)], "3 item(s) and 10 user(s), 0 with more than 3"),
    ([f"u{i} a b a b" for i in range(10)], "2 item(s) and 10 user(s), 10 with more than 3"),
])
def test_train_refuses_degenerate_data_up_front(tmp_path, cli, lines, found):
    data = tmp_path / "seq.txt"
    data.write_text("\n".join(lines) + "\n")
    for arch in (["--preset", "tiny"], ["--arch", "qwen3"]):
        run = cli("train", "--dataset", "sequences", "--data", data, *arch, "--out",
                  tmp_path / "m")
        assert run.returncode == 2 and found in run.stderr, run.stderr[-2000:]
        assert "training needs at least 3 items and one user with 4 interactions" in run.stderr
        assert "Traceback" not in run.stderr and not (tmp_path / "m").exists()
    with pytest.raises(UserError, match=re.escape(found)):  # the Python API says the same
        _train_tiny(data)


def test_data_with_no_pair_above_chance_still_trains(tmp_path):
    """One user, items a a b c: the training part (a a) has no positive PMI, and the SVD had
    nothing to factor (ARPACK error); the tokenizer now falls back to random embeddings."""
    data = tmp_path / "seq.txt"
    data.write_text("u1 a a b c\n")
    bundle = _train_tiny(data, steps=1)
    assert bundle.config.num_items == 3 and len(np.unique(bundle.semantic_ids.codes[1:],
                                                          axis=0)) == 3

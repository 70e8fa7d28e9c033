"""train --arch qwen3: itemic-token windows, the constrained validation beam, the Hugging Face
checkpoint folder and catalogue, and the command line (a tiny Qwen3 on a learnable file)."""

import json

import numpy as np
import pytest
import torch

from helpers import write_sequences
from onerec_trt.cli import get_parser, main
from onerec_trt.commands.train import _lm_options
from onerec_trt.data import load_dataset
from onerec_trt.model.hf.itemic import UNK
from onerec_trt.model.train import qwen3 as tl
from onerec_trt.model.train.qwen3_data import (
    CATALOGUE_HEADER,
    IGNORE,
    item_windows,
    itemic_layout,
    prompt_ids,
    rank_users,
    render_windows,
)
from onerec_trt.model.train.stage import TrainConfig


def _options(out, **train):
    cfg = TrainConfig(epochs=3, lr=1e-2, batch_size=16, warmup_steps=5, eval_users=40,
                      eval_beam=10, max_minutes=5, **train)
    return tl.LMOptions(dataset="sequences", out=str(out), codebook=8, train=cfg,
                        model=tl.LMConfig(hidden=32, layers=1, heads=2, max_history=8),
                        threads=1, progress=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    path = write_sequences(root / "seq.txt", users=120, items=40)
    data = load_dataset("sequences", path)
    fitted = tl.fit_lm(data, _options(root / "model"))
    folder = root / "ckpt"
    folder.mkdir()
    tl.write_checkpoint(folder, fitted)
    return data, fitted, folder, path


def _catalogue(folder):
    lines = (folder / tl.CATALOGUE).read_text().splitlines()
    return lines[0], [line.split("\t") for line in lines[1:]]


def test_windows_score_every_item_but_the_first_once():
    seq = np.arange(1, 12)
    windows = item_windows([seq], 4)
    assert all(len(w) <= 5 for w in windows) and np.array_equal(windows[0], [7, 8, 9, 10, 11])
    assert sorted(np.concatenate([w[1:] for w in windows]).tolist()) == list(range(2, 12))


def test_rendered_targets_are_the_codes_of_the_later_items():
    codes = np.array([[-1, -1, -1], [0, 1, 2], [3, 0, 1], [1, 1, 1]])
    layout = itemic_layout(codes, [4, 4, 4])
    ids, targets = render_windows([np.array([1, 2, 3]), np.array([2, 3])], layout)
    assert ids.shape == (2, 15) and (ids[1, 10:] == layout.pad_id).all()
    assert np.array_equal(ids[0, :5], layout.item_tokens[1])
    scored = np.flatnonzero(targets[0] != IGNORE)
    assert scored.tolist() == [5, 6, 7, 10, 11, 12]  # the token before each code of items 2, 3
    assert np.array_equal(targets[0, scored], ids[0, scored + 1])
    assert np.array_equal(targets[0, [5, 6, 7]], layout.item_tokens[2, 1:4])
    assert (targets[1] != IGNORE).sum() == 3
    prompt = prompt_ids(np.array([1, 2, 3]), 2, layout)
    assert np.array_equal(prompt, [*layout.item_tokens[2], *layout.item_tokens[3],
                                   layout.begin_id])


def test_training_lowers_the_loss_and_learns(trained):
    _, fitted, _, _ = trained
    epochs = fitted.record["epochs"]
    assert len(epochs) == 3 and epochs[-1]["loss"] < epochs[0]["loss"]
    assert fitted.record["best_epoch"]["valid_recall@10"] > 0.3  # 40 items: chance is 0.25


def test_beam_search_matches_exhaustive_item_scores(trained):
    data, fitted, _, _ = trained
    model, layout = fitted.model, fitted.layout
    hist = [s[:-2] for s in data.sequences[:6]]
    lengths = {len(s[-8:]) for s in hist}
    ranked = rank_users(model, hist, 8, layout, fitted.semantic_ids, beam=10_000, batch=4)
    items = np.arange(1, data.num_items + 1)
    with torch.no_grad():
        for row, h in enumerate(hist):
            prompt = torch.from_numpy(prompt_ids(h, 8, layout))
            codes = torch.from_numpy(layout.item_tokens[items, 1:1 + layout.levels])
            ids = torch.cat([prompt.expand(len(items), -1), codes], dim=1)
            logp = model(input_ids=ids).logits.float().log_softmax(-1)
            steps = logp[:, len(prompt) - 1:-1].gather(2, codes[..., None])[..., 0].sum(1)
            best = items[np.argsort(-steps.numpy(), kind="stable")[:10]]
            assert set(ranked[row].tolist()) == set(best.tolist()), (row, lengths)


def test_checkpoint_loads_with_transformers(trained):
    from transformers import Qwen3ForCausalLM

    _, fitted, folder, _ = trained
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", tl.CATALOGUE,
            tl.TRAINING} <= names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    loaded = Qwen3ForCausalLM.from_pretrained(folder).eval()
    ids = torch.from_numpy(prompt_ids(np.array([1, 2, 3]), 8, fitted.layout))[None]
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids).logits, fitted.model(input_ids=ids).logits,
                              atol=1e-5)
    config = json.loads((folder / "config.json").read_text())
    assert config["vocab_size"] == len(fitted.layout.tokens) and config["tie_word_embeddings"]
    assert config["max_position_embeddings"] >= 8 * 5 + 8
    record = json.loads((folder / tl.TRAINING).read_text())
    assert record["arch"] == "qwen3" and record["best_epoch"]["epoch"] >= 1


def test_catalogue_names_every_item_once_in_model_id_order(trained):
    data, fitted, folder, _ = trained
    header, rows = _catalogue(folder)
    assert header == CATALOGUE_HEADER
    assert [r[0] for r in rows] == data.vocab.tokens  # model item ids 1..N
    assert len({r[1] for r in rows}) == len(rows) == data.num_items


def test_tokenizer_maps_every_catalogue_token(trained):
    from tokenizers import Tokenizer

    _, fitted, folder, _ = trained
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    unk = tokenizer.token_to_id(UNK)
    _, rows = _catalogue(folder)
    for item, (_, codes) in enumerate(rows, start=1):
        encoded = tokenizer.encode(f"<|sid_begin|>{codes}<|sid_end|>").ids
        assert unk not in encoded
        assert encoded == fitted.layout.item_tokens[item].tolist()


def test_train_lm_writes_an_imported_model_folder(trained, tmp_path):
    """The checkpoint goes through the real import stage: a model folder every stage takes,
    whose recommendations are the checkpoint's own (the adapter in the generation loop)."""
    from onerec_trt.model.checkpoint import load_model
    from onerec_trt.model.generate import beam_search

    _, _, _, path = trained
    opts = _options(tmp_path / "model", max_steps=3)
    opts.data, opts.checkpoint = str(path), str(tmp_path / "hf")
    assert tl.train_lm(opts) == tmp_path / "model"
    assert (tmp_path / "hf" / "manifest.json").is_file()  # --checkpoint: kept, with a manifest
    bundle = load_model(tmp_path / "model")
    assert bundle.training["filters"]["min_user"] == 3 and bundle.dataset == "sequences"
    assert bundle.load_data().num_items == bundle.config.num_items  # the data's vocabulary
    history = torch.zeros(2, 8, dtype=torch.long)
    history[:, -2:] = torch.tensor([1, 2])
    recs = beam_search(bundle.model, history, 10, 5)
    assert (recs.items > 0).all()
    opts.checkpoint, opts.out = None, str(tmp_path / "model2")
    tl.train_lm(opts)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "model", "model2"]  # no temp


def test_cli_defaults_and_overrides_for_qwen3(tmp_path):
    parse = get_parser().parse_args
    base = ["train", "--arch", "qwen3", "--dataset", "ml-1m", "--out", str(tmp_path / "m")]
    opts = _lm_options(parse(base))
    assert opts.train == tl.lm_train_config() and opts.model == tl.LMConfig()
    opts = _lm_options(parse([*base, "--lr", "0.01", "--d-model", "64", "--heads", "2",
                              "--max-history", "20", "--eval-users", "10"]))
    assert (opts.train.lr, opts.train.eval_users, opts.train.batch_size) == (
        0.01, 10, tl.lm_train_config().batch_size)
    assert (opts.model.hidden, opts.model.heads, opts.model.max_history) == (64, 2, 20)


@pytest.mark.parametrize("args, message", [
    (["--arch", "qwen3", "--preset", "tiny"], "--preset: only for --arch onerec"),
    (["--arch", "qwen3", "--prefix-inputs"], "--prefix-inputs: only for --arch onerec"),
    (["--layers", "2"], "--layers: only for --arch qwen3"),
    (["--arch", "qwen3", "--d-model", "30", "--heads", "4"], "not a multiple"),
])
def test_cli_refuses_options_of_the_other_arch(tmp_path, capsys, args, message):
    code = main(["train", "--dataset", "ml-1m", "--out", str(tmp_path / "m"), *args])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()

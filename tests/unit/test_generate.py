from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers import random_histories, tiny_model, tiny_semantic_ids
from onerec_trt.model.config import ModelConfig
from onerec_trt.model.generate import STEPS, Generator, beam_search, make_step, stable_topk
from onerec_trt.model.onerec import OneRecModel
from onerec_trt.model.tokenizer import SemanticIds


def exhaustive_ranking(model, hist: torch.Tensor):
    """Every item's total log-probability via the teacher-forced forward pass."""
    ids = model.semantic_ids
    items = torch.arange(1, ids.num_items + 1)
    codes = torch.as_tensor(ids.codes)[items]
    levels = codes.shape[1]
    out = []
    for row in hist:
        rows = row.expand(len(items), -1)
        target = torch.zeros(len(items), rows.shape[1], levels, dtype=torch.long)
        target[:, -1] = codes
        logits, _ = model(rows, target, torch.full((len(items), 1), rows.shape[1] - 1))
        total = sum(torch.log_softmax(lg[:, 0].float(), -1).gather(1, codes[:, [lvl]]).squeeze(1)
                    for lvl, lg in enumerate(logits))
        order = torch.sort(total, descending=True, stable=True).indices
        out.append((items[order].numpy(), total[order].detach().numpy()))
    return out


@torch.no_grad()
def test_wide_beam_equals_exhaustive_search():
    model = tiny_model(num_items=40, codebook=4)
    hist = random_histories(4, 20, 40, seed=1)
    recs = beam_search(model, hist, beam=64, topk=40)
    for u, (items, scores) in enumerate(exhaustive_ranking(model, hist)):
        assert recs.items[u].tolist() == items.tolist()
        np.testing.assert_allclose(recs.scores[u], scores, atol=1e-4)


@torch.no_grad()
def test_results_are_real_items_with_their_codes_sorted_by_score():
    model = tiny_model(num_items=40, codebook=4)
    recs = beam_search(model, random_histories(5, 20, 40, seed=2), beam=8, topk=5)
    codes = model.semantic_ids.codes
    assert ((recs.items >= 1) & (recs.items <= 40)).all()
    assert (codes[recs.items] == recs.codes).all()
    assert (np.diff(recs.scores, axis=1) <= 0).all()
    assert recs.scores.dtype == np.float32


class UniformModel:
    """A protocol implementation whose every logit is equal: every candidate ties."""

    def __init__(self, ids):
        self.semantic_ids = ids

    def encode_context(self, history):
        return SimpleNamespace(mask=history != 0)

    def decode_step(self, ctx, prev, step, cache, beams):
        n = ctx.mask.shape[0]
        return torch.zeros(n, beams, self.semantic_ids.codebook_sizes[step]), None

    def reorder_cache(self, cache, parent):
        return cache


TORCH_STEPS = ("dense", "csr", "plugin")  # "triton-lang" runs under the interpreter elsewhere


@pytest.mark.parametrize("step", TORCH_STEPS)
@pytest.mark.parametrize("beam", [1, 3, 8, 64])
def test_ties_go_to_the_lower_parent_then_the_lower_code(beam, step):
    """With all scores equal, the documented rule keeps the lexicographically smallest codes."""
    ids = tiny_semantic_ids(40, 4)
    recs = beam_search(UniformModel(ids), torch.ones(2, 5, dtype=torch.long), beam, beam, step)
    order = np.lexsort(ids.codes[1:].T[::-1])
    expected = (order + 1)[:beam]
    live = min(beam, ids.num_items)
    assert recs.items[0, :live].tolist() == expected[:live].tolist()
    assert (recs.items[0] == recs.items[1]).all()


@pytest.mark.parametrize("step", TORCH_STEPS)
def test_beams_beyond_the_catalogue_are_dead_items(step):
    ids = tiny_semantic_ids(num_items=3, codebook=4, levels=2)
    recs = beam_search(UniformModel(ids), torch.ones(1, 5, dtype=torch.long), beam=6, topk=6,
                       step=step)
    assert sorted(recs.items[0, :3].tolist()) == [1, 2, 3]
    assert recs.items[0, 3:].tolist() == [-1, -1, -1]
    assert np.isneginf(recs.scores[0, 3:]).all()
    assert (recs.codes[0, 3:] == -1).all()


def _model_over(ids: SemanticIds) -> OneRecModel:
    torch.manual_seed(0)
    cfg = ModelConfig.from_preset("tiny", num_items=ids.num_items,
                                  codebook_sizes=list(ids.codebook_sizes))
    model = OneRecModel(cfg, ids)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return model.eval()


def _random_catalogue(num_items: int, codebook: int, levels: int, seed: int) -> SemanticIds:
    """Unique random semantic IDs: skewed children counts, unlike the tokenizer's."""
    rng = np.random.default_rng(seed)
    codes = np.unique(rng.integers(0, codebook, (num_items * 2, levels)), axis=0)
    codes = codes[rng.permutation(len(codes))[:num_items]]
    return SemanticIds(np.concatenate([np.full((1, levels), -1), codes]), [codebook] * levels)


@pytest.mark.parametrize("step", ["csr", "plugin"])
@pytest.mark.parametrize("catalogue", ["tokenizer", "random", "uniform", "sparse_root"])
def test_every_step_selects_exactly_what_the_dense_reference_selects(step, catalogue):
    """Items, codes and fp32 scores bit for bit, ties included (the uniform model ties all)."""
    if catalogue == "tokenizer":
        model = tiny_model(num_items=40, codebook=4)
    else:
        ids = _random_catalogue(300, 16, 3, seed=3)
        if catalogue == "sparse_root":  # the root lacks most codes: step 0 gathers its children
            codes = ids.codes[1:].copy()
            codes[:, 0] = np.array([1, 5, 11])[codes[:, 0] % 3]
            codes = np.unique(codes, axis=0)
            ids = SemanticIds(np.concatenate([np.full((1, 3), -1), codes]), [16] * 3)
        model = UniformModel(ids) if catalogue == "uniform" else _model_over(ids)
    hist = random_histories(16, 20, 40, seed=4)
    for beam, topk in ((1, 1), (7, 3), (40, 40)):
        ref = beam_search(model, hist, beam, topk, "dense")
        out = beam_search(model, hist, beam, topk, step)
        np.testing.assert_array_equal(out.items, ref.items)
        np.testing.assert_array_equal(out.scores, ref.scores)
        np.testing.assert_array_equal(out.codes, ref.codes)


def test_steps_are_named_in_one_table():
    assert set(STEPS) == {"dense", "csr", "plugin", "triton-lang"}
    old_name = make_step("triton", tiny_semantic_ids().trie)  # the step's old name still works
    assert type(old_name).__name__ == "TritonLangStep"
    with pytest.raises(ValueError, match="unknown beam step"):
        Generator(tiny_model(), 4, 2, "sparse")


def test_stable_topk_breaks_ties_by_index():
    values, index = stable_topk(torch.tensor([[1.0, 3.0, 3.0, 0.0, 3.0]]), 3)
    assert index.tolist() == [[1, 2, 4]]
    assert values.tolist() == [[3.0, 3.0, 3.0]]


def test_topk_must_not_exceed_beam():
    with pytest.raises(ValueError, match="topk <= beam"):
        beam_search(tiny_model(), torch.ones(1, 5, dtype=torch.long), beam=4, topk=5)

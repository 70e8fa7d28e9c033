"""The plugin ops in torch (``plugins.torch_ops``): their meaning is the dense step's generation,
exactly."""

import ast
import inspect

import numpy as np
import pytest
import torch

from helpers import random_histories, tiny_model
from onerec_trt.model.generate import beam_search, stable_topk
from onerec_trt.model.trie import Trie
from onerec_trt.plugins import aot, ort_ops, spec, tensorrt_plugins, torch_ops
from onerec_trt.plugins.packed import PackedTrie


def random_trie(items: int, sizes: list[int], seed: int = 0) -> PackedTrie:
    rng = np.random.default_rng(seed)
    codes = np.unique(np.stack([rng.integers(0, v, items) for v in sizes], 1), axis=0)
    return PackedTrie.from_trie(Trie.from_codes(codes, np.arange(1, len(codes) + 1), sizes))


def tensors(trie: PackedTrie) -> tuple:
    a = trie.arrays()
    return tuple(torch.from_numpy(a[k]) for k in ("indptr", "child_code", "offsets"))


def step_inputs(trie, n, b, step, seed, kind="random"):
    g = torch.Generator().manual_seed(seed)
    v = trie.codebook_sizes[step]
    logits = torch.randn(n, b, v, generator=g)
    scores = -torch.rand(n, b, generator=g) * 5
    node = torch.randint(0, trie.nodes(step), (n, b), generator=g)
    if kind == "ties":  # identical rows and scores, few distinct values: exact ties
        logits = logits[:, :1].mul(2).round().expand(n, b, v).contiguous()
        scores[:] = -1.0
        node[:, 1::2] = node[:, :1]
    elif kind == "edge":  # dead beams, invalid node ids
        scores[:, -1] = float("-inf")
        node[:, 0] = -1
        node[:, 1 % b] = trie.nodes(step) + 3
    return logits, scores, node


def test_reference_generation_equals_beam_search_bit_for_bit():
    model = tiny_model(num_items=40, codebook=4)
    hist = random_histories(24, model.cfg.max_history, 40, seed=2)
    for beam, topk in ((10, 10), (7, 3), (1, 1)):
        ref = beam_search(model, hist, beam, topk, step="dense")
        out = beam_search(model, hist, beam, topk, step="plugin")
        np.testing.assert_array_equal(out.items, ref.items)
        np.testing.assert_array_equal(out.scores, ref.scores)  # bit-identical fp32
        np.testing.assert_array_equal(out.codes, ref.codes)
        assert (out.items[np.isfinite(out.scores)] > 0).all()


@pytest.mark.parametrize("kind", ["random", "ties", "edge"])
@pytest.mark.parametrize("n,b,k,step", [(3, 6, 6, 1), (2, 8, 20, 0), (1, 1, 4, 2), (2, 5, 2, 1)])
def test_expand_then_select_is_the_step(kind, n, b, k, step):
    trie = random_trie(300, [8, 16, 8])
    logits, scores, node = step_inputs(trie, n, b, step, seed=n * b + k, kind=kind)
    t = tensors(trie)
    want = torch_ops.trie_beam_step(logits, scores, node, *t, step, k)
    cand = torch_ops.trie_beam_expand(logits, scores, node, *t, step, k)
    assert cand.shape == (n, b, min(k, logits.shape[-1]))
    assert (cand.diff(dim=-1) > 0).all()  # ascending, unique keys
    got = torch_ops.trie_beam_select(cand, node, *t, step, k, logits.shape[-1])
    for a, w in zip(got, want, strict=True):
        assert torch.equal(a, w)


def test_step_rules_ties_dead_beams_and_children():
    # node 0 has children {1, 3}, node 1 has none; V = 4
    trie = PackedTrie.from_csr([np.array([0, 2]), np.array([0, 2, 2])],
                               [np.array([1, 3]), np.array([0, 1])], np.array([7, 9]), [4, 4])
    t = tensors(trie)
    logits = torch.zeros(1, 3, 4)  # every code equally likely: all candidates tie
    scores = torch.tensor([[-1.0, -1.0, float("-inf")]])
    node = torch.tensor([[1, 0, 0]])  # beam 0: no children; beam 2: dead
    vals, parent, code, nxt = torch_ops.trie_beam_step(logits, scores, node, *t, 1, 5)
    # finite: beam 1 codes 0 and 1 (children 0, 1); then -inf in flat order: beam 0 codes 0..
    assert parent.tolist() == [[1, 1, 0, 0, 0]] and code.tolist() == [[0, 1, 0, 1, 2]]
    assert nxt.tolist() == [[0, 1, 0, 0, 0]]
    assert torch.isinf(vals[0, 2:]).all() and torch.isfinite(vals[0, :2]).all()


def test_keys_order_like_a_stable_sort_and_decode_exactly():
    values = torch.tensor([[0.5, -0.0, 0.0, float("-inf"), -3.25, 0.5, 1e-30, -1e30]])
    flat = torch.arange(values.shape[1]).unsqueeze(0)
    keys = torch_ops.encode_keys(values, flat)
    _, order = stable_topk(values, values.shape[1])
    assert torch.equal(keys.argsort(dim=1), order)  # -0.0 ties +0.0: flat order decides
    decoded, back = torch_ops.decode_keys(keys)
    assert torch.equal(back, flat) and torch.equal(decoded, values)  # -0.0 reads as 0.0


def test_codes_to_item_walks_the_trie():
    trie = random_trie(500, [8, 8, 8], seed=3)
    ids = np.arange(1, len(trie.leaf_item) + 1)
    t = tensors(trie)
    real = torch.from_numpy(_leaf_codes(trie))
    items = torch_ops.codes_to_item(real.unsqueeze(0), *t, torch.from_numpy(trie.leaf_item))
    np.testing.assert_array_equal(items[0].numpy(), trie.leaf_item)
    assert sorted(trie.leaf_item) == list(ids)
    known = {tuple(c) for c in real.tolist()}
    probe = torch.randint(-1, 9, (4, 50, 3), generator=torch.Generator().manual_seed(0))
    got = torch_ops.codes_to_item(probe, *t, torch.from_numpy(trie.leaf_item))
    lookup = {tuple(c): i for c, i in zip(real.tolist(), trie.leaf_item.tolist(), strict=True)}
    want = [[lookup[tuple(c)] if tuple(c) in known else -1 for c in row] for row in probe.tolist()]
    assert got.tolist() == want and (got == -1).any() and (got > 0).any()


def _leaf_codes(trie: PackedTrie) -> np.ndarray:
    """Codes of every leaf, by walking the CSR arrays down."""
    paths = np.zeros((1, 0), dtype=np.int64)
    for t in range(trie.levels):
        ptr, codes = trie.step_arrays(t)
        parents = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
        paths = np.concatenate([paths[parents], codes[:, None]], axis=1)
    return paths


def test_packed_trie_refuses_unsorted_children():
    with pytest.raises(ValueError, match="ascending"):
        PackedTrie.from_csr([np.array([0, 2])], [np.array([3, 1])], np.array([1, 2]), [4])


def test_spec_names_match_every_rendering():
    assert spec.NAMESPACE == "onerec"
    assert set(spec.PLUGINS) == {"TrieBeamExpand", "TrieBeamSelect", "CodesToItem"}
    assert spec.COMPOSITES["TrieBeamStep"][1] == ("TrieBeamExpand", "TrieBeamSelect")
    for name, plugin in spec.PLUGINS.items():
        inputs = [t.name for t in plugin.inputs]
        kernel_params = [p for p, _ in aot.PARAMS[name]]
        assert kernel_params[:len(inputs)] == inputs  # AOT order: inputs first, outputs last
        assert kernel_params[-len(plugin.outputs):] == [t.name for t in plugin.outputs]
        op = getattr(ort_ops, _snake(name))
        params = list(inspect.signature(op).parameters)
        assert params == inputs + list(plugin.attributes)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def test_tensorrt_registration_signatures_follow_the_spec():
    """TensorRT's QDP validator wants register(inputs..., attributes...) and
    aot_impl(same..., outputs, tactic); read the definitions without TensorRT."""
    tree = ast.parse(inspect.getsource(tensorrt_plugins))
    defs = {f.name: [a.arg for a in f.args.args] for f in ast.walk(tree)
            if isinstance(f, ast.FunctionDef)}
    for name, plugin in spec.PLUGINS.items():
        expected = [t.name for t in plugin.inputs] + list(plugin.attributes)
        assert defs[_snake(name)] == expected
        assert defs[_snake(name) + "_aot"] == expected + ["outputs", "tactic"]
    assert not any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
                   for n in tree.body)  # annotations must stay classes, not strings


def test_register_plugins_without_tensorrt_is_a_user_error():
    from onerec_trt.errors import UserError

    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="TensorRT"):
            tensorrt_plugins.register_plugins()
    else:
        pytest.skip("TensorRT is installed: registration is exercised by the engine build")

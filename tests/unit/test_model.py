import numpy as np
import pytest
import torch

from helpers import random_histories, tiny_model
from onerec_trt.errors import UserError
from onerec_trt.model.config import ModelConfig, presets
from onerec_trt.model.layers import MoEFeedForward, attention
from onerec_trt.model.onerec import OneRecModel


def test_presets_exist_and_paper_is_about_1b_parameters():
    assert {"tiny", "small", "paper"} <= set(presets())
    cfg = ModelConfig.from_preset("paper")
    with torch.device("meta"):
        model = OneRecModel(cfg)
    params = sum(p.numel() for p in model.parameters())
    assert 0.8e9 < params < 1.6e9, params
    assert cfg.codebook_sizes == [8192, 8192, 8192] and cfg.max_history == 512


def test_config_rejects_bad_values():
    with pytest.raises(UserError, match="multiple of n_heads"):
        ModelConfig(d_model=10, n_heads=3)
    with pytest.raises(UserError, match="unknown preset"):
        ModelConfig.from_preset("huge")
    with pytest.raises(UserError, match="unknown model config key"):
        ModelConfig.from_dict({"d_modle": 3})


def test_grouped_query_attention_equals_repeated_kv():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 5, 8, generator=g)
    k, v = torch.randn(2, 2, 7, 8, generator=g), torch.randn(2, 2, 7, 8, generator=g)
    mask = torch.rand(2, 1, 5, 7, generator=g) > 0.3
    mask[..., 0] = True
    ref = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1), attn_mask=mask)
    torch.testing.assert_close(attention(q, k, v, mask), ref, atol=1e-5, rtol=1e-5)


def test_moe_routes_to_top_k_experts_only():
    torch.manual_seed(0)
    moe = MoEFeedForward(8, 16, experts=4, top_k=1)
    x = torch.randn(3, 8)
    chosen = moe.router(x).argmax(-1)
    expected = torch.stack([moe.experts[int(e)](x[i]) for i, e in enumerate(chosen)])
    torch.testing.assert_close(moe(x), expected, atol=1e-6, rtol=1e-5)


def test_decode_steps_with_cache_match_teacher_forced_forward():
    """The incremental decode (per-beam KV cache) computes what training computes."""
    model = tiny_model()
    hist = random_histories(3, 20, 40)
    items = torch.tensor([[5, 17, 33], [1, 2, 3], [40, 9, 12]])  # [N, beams]
    codes = torch.as_tensor(model.semantic_ids.codes)[items]  # [N, B, L]
    n, b, levels = codes.shape
    # teacher forced: each (user, beam) as its own row, the target at the last position
    rows = hist.repeat_interleave(b, 0)
    target_codes = torch.zeros(n * b, 20, levels, dtype=torch.long)
    target_codes[:, -1] = codes.reshape(n * b, levels)
    logits, _ = model(rows, target_codes, torch.full((n * b, 1), 19))
    ctx = model.encode_context(hist)
    cache, prev = None, None
    for step in range(levels):
        step_logits, cache = model.decode_step(ctx, prev, step, cache, b)
        torch.testing.assert_close(step_logits.reshape(n * b, -1), logits[step][:, 0],
                                   atol=1e-4, rtol=1e-4)
        prev = codes[..., step]


def test_all_padding_history_gives_finite_logits():
    model = tiny_model()
    ctx = model.encode_context(torch.zeros(2, 20, dtype=torch.long))
    logits, _ = model.decode_step(ctx, None, 0, None, 3)
    assert torch.isfinite(logits).all()


def test_reorder_cache_takes_parent_rows():
    cache = [(torch.arange(6.0).view(6, 1, 1, 1), -torch.arange(6.0).view(6, 1, 1, 1))]
    parent = torch.tensor([[2, 2, 0], [1, 0, 0]])  # N=2, B=3
    (k, v), = OneRecModel.reorder_cache(cache, parent)
    assert k.flatten().tolist() == [2, 2, 0, 4, 3, 3]
    assert np.array_equal(v.flatten().numpy(), -k.flatten().numpy())

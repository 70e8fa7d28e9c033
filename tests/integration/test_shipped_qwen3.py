"""The shipped Qwen3 model (``--model qwen3-ml1m``: a transformers Qwen3 trained by ``train
--arch qwen3`` on MovieLens-1M, imported): its folder, its accuracy beside the baselines, and
transformers' own constrained beam search on real users."""

import json

import numpy as np
import pytest
import torch

from onerec_trt.model.checkpoint import SHIPPED_MODELS, load_model

SHIPPED = SHIPPED_MODELS["qwen3-ml1m"]
pytestmark = pytest.mark.skipif(not SHIPPED.is_dir(), reason=f"no shipped model in {SHIPPED}")


def test_folder_is_an_imported_qwen3_and_small():
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    assert manifest["command"].startswith("onerec-trt train --arch qwen3 --dataset ml-1m")
    assert manifest["stage"] == "import"
    assert sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file()) < 20 * 2**20
    assert not list(SHIPPED.rglob("*.py"))
    bundle = load_model("qwen3-ml1m")
    assert bundle.dataset == "ml-1m" and bundle.config.model_type == "qwen3"


def test_accuracy_beside_the_baselines():
    from onerec_trt.evaluate import EvalOptions, evaluate

    report = evaluate(EvalOptions(model="qwen3-ml1m", users=1000, baselines=True),
                      progress=False)
    # measured on all 6,040 users in docs/model.md; 1,000 users move it by about +-0.01
    assert report.recall_at_10 >= 0.16 and report.ndcg_at_10 >= 0.08
    assert report.recall_at_10 > report.baselines["item_knn"]["recall@10"]


def test_torch_loop_is_transformers_generate_on_real_users():
    from onerec_trt.data import pad_histories
    from onerec_trt.data.samplers import sample_users
    from onerec_trt.model.generate import beam_search
    from onerec_trt.model.hf.oracle import transformers_generate
    from onerec_trt.model.hf.record import ImportRecord

    bundle = load_model("qwen3-ml1m")
    split = bundle.load_data().split()
    tests = split.histories("test")
    users = sample_users(split.num_users, 30, seed=0)
    hist = pad_histories([tests[i] for i in users], bundle.config.max_history)
    ours = beam_search(bundle.model, torch.from_numpy(hist), 20, 10)
    oracle = transformers_generate(bundle.model.backbone, ImportRecord.load(SHIPPED),
                                   bundle.semantic_ids.codes, hist, 20, 10)
    np.testing.assert_array_equal(ours.items, oracle.items)
    np.testing.assert_allclose(ours.scores, oracle.scores, atol=1e-4, rtol=0)

"""bench --peers: transformers' own constrained generate timed beside the project's graph, its
items checked against the graph's on the same users; a disagreeing peer gets no speed ratio."""

import numpy as np
import pytest

from hf_checkpoints import tiny_qwen3, tiny_t5
from onerec_trt.backends import HfOracle, OrtBackend
from onerec_trt.bench import BenchOptions, bench
from onerec_trt.bench.backends import to_worker
from onerec_trt.bench.peers import check, optimum_reason
from onerec_trt.bench.pool import BackendWorker, measure
from onerec_trt.bench.report import peer_lines
from onerec_trt.bench.stage import _peers
from onerec_trt.cli import main as cli_main
from onerec_trt.model.checkpoint import load_model
from onerec_trt.model.hf.oracle import transformers_generate
from onerec_trt.model.hf.record import ImportRecord

QUIET = dict(progress=False)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A tiny Qwen3 checkpoint imported with synthetic requests and exported (beam 16)."""
    root = tmp_path_factory.mktemp("peer")
    checkpoint, catalogue = tiny_qwen3(root / "checkpoint")
    assert cli_main(["import", "--hf", str(checkpoint), "--catalogue", str(catalogue),
                     "--max-history", "6", "--histories", "20", "--out",
                     str(root / "m")]) == 0
    assert cli_main(["export", "--model", str(root / "m"), "--beam", "16", "--topk", "10",
                     "--out", str(root / "onnx")]) == 0
    np.save(root / "users.npy", np.load(root / "m" / "histories.npy")[:5])
    return root


def test_hf_peer_gives_the_graphs_items_and_is_timed_against_it(imported, tmp_path, caplog):
    caplog.set_level("INFO", logger="onerec_trt")
    res = bench(BenchOptions(model=str(imported / "m"), onnx=str(imported / "onnx"),
                             out=str(tmp_path / "b"), backends=["ort-fp32"],
                             peers=["hf", "optimum"], histories=str(imported / "users.npy"),
                             batches=[1, 3], rounds=1, warmup=0, agreement_batch=2, **QUIET))
    lines = caplog.messages
    assert set(res.backends) == {"ort-fp32", "hf"}
    # one pass over the 5 users: 5 requests of 1, 2 requests of 3 (the last wraps around)
    assert len(res.backends["hf"]["latencies_s"]["1"]) == 5
    assert len(res.backends["hf"]["latencies_s"]["3"]) == 2
    hf = res.peers["peers"]["hf"]
    assert (hf["against"], hf["users"], hf["identical"], hf["agrees"]) == \
        ("ort-fp32", 5, 5, True)
    assert hf["max_score_diff"] < 1e-4
    assert set(hf["speedups"]["ort-fp32"]) == {"1", "3"}
    assert hf["speedups"]["ort-fp32"]["1"]["repetitions"] == 5
    assert "transformers" in res.backends["hf"]["info"]
    assert "get_parameter_dtype" in res.skipped["optimum"]  # never a silent skip
    md = (tmp_path / "b" / "bench.md").read_text()
    assert "| hf | ort-fp32 | 5/5 |" in md and "| ort-fp32 | hf | 1 |" in md
    assert "skipped: " + res.skipped["optimum"] in md
    assert "once per beam" in md and "prefix_allowed_tokens_fn" in md
    assert any(line.startswith("peer hf against ort-fp32: identical top-K for 5/5") for line in
               lines)


def test_a_disagreeing_peer_is_reported_and_not_timed_as_equal(imported, tmp_path):
    """The hf peer answers other users (the rows reversed): its items differ, so it is
    reported as disagreeing and no speed ratio is formed."""
    users = np.load(imported / "users.npy")
    np.save(tmp_path / "other.npy", users[::-1])
    base = {"beam": 16, "topk": 10, "history_length": 6, "num_items": 60, "seed": 0,
            "threads": 1, "model": str(imported / "m")}
    specs = {"ort-fp32": {**base, "name": "ort-fp32", "kind": "ort", "precision": "fp32",
                          "path": str(imported / "onnx" / "reference.fp32.onnx"),
                          "histories_file": str(imported / "users.npy")},
             "hf": {**base, "name": "hf", "kind": "hf", "precision": "fp32", "path": None,
                    "histories_file": str(tmp_path / "other.npy")}}
    backends = {"ort-fp32": OrtBackend(specs["ort-fp32"]["path"], threads=1, precision="fp32"),
                "hf": HfOracle(str(imported / "m"), beam=16, topk=10, batch=None, threads=1)}
    workers = {n: BackendWorker(n, 1) for n in specs}
    try:
        for name, spec in specs.items():
            workers[name].call("load", spec=spec, backend=to_worker(backends[name]))
        m = measure(workers, [1], reps=3, warmup=0, max_call_s=60, progress=False)
        peers = _peers(BenchOptions(), workers, m.timings, ["hf"], {})
    finally:
        for worker in workers.values():
            worker.close()
    hf = peers["peers"]["hf"]
    assert hf["users"] == 3 and not hf["agrees"] and hf["identical"] < 3
    assert hf["speedups"] == {}
    md = "\n".join(peer_lines({"peers": peers, "skipped": {}}))
    assert "DISAGREES: not compared on speed" in md and "| ort-fp32 | hf |" not in md


def test_peer_check_counts_identical_lists_and_the_largest_score_difference():
    ref = {"0": {"items": [1, 2], "scores": [-1.0, -2.0]},
           "1": {"items": [3, 4], "scores": [-1.0, -1e30]}}
    same = {"0": {"items": [1, 2], "scores": [-1.0, -2.00001]},
            "1": {"items": [3, 4], "scores": [-1.0, -1e30]}}
    assert check(ref, same) == {"users": 2, "identical": 2, "max_score_diff": pytest.approx(1e-5),
                                "agrees": True}
    swapped = {**same, "1": {"items": [4, 3], "scores": [-1.0, -1e30]}}
    assert check(ref, swapped)["identical"] == 1 and not check(ref, swapped)["agrees"]
    assert not check(ref, {})["agrees"]  # no user in common is no agreement
    assert "transformers<4.58" in optimum_reason()


def test_a_native_models_peer_is_its_torch_loop(tiny_pipeline, tmp_path, caplog):
    caplog.set_level("INFO", logger="onerec_trt")
    res = bench(BenchOptions(model=str(tiny_pipeline / "model"), onnx=str(tiny_pipeline / "onnx"),
                             out=str(tmp_path / "b"), backends=["ort-fp32"], peers=["hf"],
                             batches=[8], rounds=1, warmup=0, agreement_batch=2, **QUIET))
    lines = caplog.messages
    assert set(res.backends) == {"ort-fp32", "torch-fp32"}
    assert "native model" in res.peers["notes"]["torch-fp32"]
    assert res.peers["peers"]["torch-fp32"]["against"] == "ort-fp32"
    assert any("the project's torch loop torch-fp32 is the peer" in line for line in lines)
    # optimum not requested: its line is still there, with why it would not run
    assert "not requested (--peers optimum)" in res.peers["optimum"]
    assert "| optimum | - | - | - | not requested" in (tmp_path / "b" / "bench.md").read_text()
    # --peers without --users/--histories: the model's held-out test users (120 here, < 200)
    assert res.request["histories"].startswith("120 held-out test users")
    assert res.peers["peers"]["torch-fp32"]["users"] == 120


@pytest.mark.parametrize("maker", [tiny_qwen3, tiny_t5], ids=["qwen3", "t5"])
def test_left_padded_generate_gives_the_unpadded_items(maker, tmp_path):
    """The hf peer's batches (prompts of different lengths, left-padded) answer as one user at
    a time does, for both families."""
    checkpoint, catalogue = maker(tmp_path / "checkpoint")
    assert cli_main(["import", "--hf", str(checkpoint), "--catalogue", str(catalogue),
                     "--max-history", "6", "--histories", "8", "--out", str(tmp_path / "m")]) == 0
    bundle = load_model(tmp_path / "m")
    record = ImportRecord.load(tmp_path / "m")
    histories = np.load(tmp_path / "m" / "histories.npy")
    assert len(set((histories > 0).sum(1).tolist())) > 1  # the prompts differ in length
    one, batched = (transformers_generate(bundle.model.backbone, record,
                                          bundle.semantic_ids.codes, histories, 8, 5, batch=b)
                    for b in (1, 8))
    np.testing.assert_array_equal(one.items, batched.items)
    np.testing.assert_allclose(one.scores, batched.scores, atol=1e-4, rtol=0)

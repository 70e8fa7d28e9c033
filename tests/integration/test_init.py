"""``onerec-trt init`` and the scale path through the CLI: an untrained model of any size, its
requests from ``--histories``, and the clear line for each bad input."""

import json

import numpy as np
import pytest
import torch

from onerec_trt.cli import main as cli_main
from onerec_trt.model.checkpoint import load_model
from onerec_trt.model.generate import beam_search
from onerec_trt.verify import VerifyReport


@pytest.fixture(scope="module")
def scale(tmp_path_factory):
    """The CI-sized scale chain: tiny preset, 200,000 items in 3 x 8192 codes."""
    root = tmp_path_factory.mktemp("scale")
    model = root / "m"
    assert cli_main(["init", "--preset", "tiny", "--items", "200000", "--codebook", "8192",
                     "--levels", "3", "--histories", "48", "--out", str(model)]) == 0
    assert cli_main(["export", "--model", str(model), "--out", str(root / "e")]) == 0
    assert cli_main(["quantize", "--model", str(model), "--onnx", str(root / "e"), "--out",
                     str(root / "q"), "--histories", str(model / "histories.npy")]) == 0
    return root


def test_init_writes_an_untrained_model_folder(scale):
    model = scale / "m"
    bundle = load_model(model)
    assert bundle.untrained and bundle.config.num_items == 200_000
    assert bundle.config.codebook_sizes == [8192] * 3
    codes = bundle.semantic_ids.codes[1:]
    assert len(np.unique(codes, axis=0)) == 200_000 and codes.max() < 8192
    assert bundle.vocab.tokens[:3] == ["1", "2", "3"]  # model item ids are 1..N
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["stage"] == "init" and manifest["untrained"] is True
    assert json.loads((model / "training.json").read_text())["untrained"] is True
    hist = np.load(model / "histories.npy")
    assert hist.shape == (48, bundle.config.max_history) and hist.max() <= 200_000
    std = float(bundle.model.blocks[0].ffn.up.weight.std())
    assert 0.015 < std < 0.025 and float(bundle.model.norm.weight.mean()) == 1.0


def test_verify_against_torch_on_histories_agrees_exactly(scale, tmp_path):
    model = scale / "m"
    assert cli_main(["verify", "--reference", str(scale / "e" / "reference.fp32.onnx"),
                     "--candidate", "torch", "--model", str(model), "--histories",
                     str(model / "histories.npy"), "--out", str(tmp_path / "v")]) == 0
    report = VerifyReport.load(tmp_path / "v" / "verify.json")
    assert report.users == 48 and not report.measured_metrics
    assert report.metrics["exact_match@10"] == 1.0 and report.overlap_at_10 == 1.0
    assert "not measured" in (tmp_path / "v" / "verify.md").read_text()


def test_the_fp8_graph_stores_fp8_weights_and_serves_the_histories(scale, tmp_path):
    import onnx

    from onerec_trt.graphs import make_session

    stored = onnx.load(str(scale / "q" / "fp8.onnx"), load_external_data=False).graph
    assert sum(t.data_type == onnx.TensorProto.FLOAT8E4M3FN for t in stored.initializer) > 10
    hist = np.load(scale / "m" / "histories.npy")
    items = make_session(scale / "q" / "fp8.cpu.onnx").run(None, {"history": hist})[0]
    bundle = load_model(scale / "m")
    ref = beam_search(bundle.model.to(torch.bfloat16), torch.from_numpy(hist), 20, 10).items
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(items, ref, strict=True)]) > 0.5


def test_stages_on_an_untrained_model_say_what_it_lacks(scale, cli):
    run = cli("evaluate", "--model", scale / "m")
    assert run.returncode == 2 and "untrained" in run.stderr and "--histories" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 2  # the line and its note


@pytest.mark.parametrize("args, message", [
    (["--items", "513", "--codebook", "8", "--levels", "3"], "above the code space"),
    (["--items", "10", "--codebook", "600000"], "outside 2..559,240"),
    (["--items", "0"], "--items must be at least 3"),
    (["--items", "2"], "--items must be at least 3"),  # export traces item ids 1..3
    (["--preset", "huge", "--items", "10"], "unknown preset"),
])
def test_bad_init_options_are_one_line(tmp_path, cli, args, message):
    run = cli("init", *args, "--out", tmp_path / "m")
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "m").exists()


def test_a_beam_above_tensorrt_topk_is_refused(scale, tmp_path, cli):
    run = cli("export", "--model", scale / "m", "--beam", "4000", "--out", tmp_path / "e")
    assert run.returncode == 2 and "TopK limit of 3840" in run.stderr
    assert not (tmp_path / "e").exists()


BAD_HISTORIES = {
    "shape": (np.ones((4, 7), dtype=np.int64), "has shape"),
    "dtype": (np.ones((4, 20), dtype=np.complex64), "has dtype"),
    "above": (np.full((4, 20), 200_001), "item id 200001 is outside the catalogue"),
    "below": (np.full((4, 20), -3), "item id -3 is outside"),
    # the Triton guard's rule (issue 28 item 21): left padding only
    "right-padded": (np.array([[5] * 3 + [0] * 17] * 4), "row 0: padding (0) after an item id"),
    "zero-between": (np.array([[0] * 17 + [5, 0, 6]] * 4), "row 0: padding (0) after an item"),
    "all-padding": (np.array([[1] * 20, [0] * 20]), "row 1: the history is all padding"),
}


@pytest.mark.parametrize("stage, bad", [("verify", b) for b in BAD_HISTORIES]
                         + [("quantize", "shape"), ("bench", "above"),
                            ("quantize", "right-padded"), ("bench", "zero-between")])
def test_bad_histories_are_one_line_in_every_stage(scale, tmp_path, cli, stage, bad):
    array, message = BAD_HISTORIES[bad]
    path = tmp_path / "h.npy"
    np.save(path, array)
    out = tmp_path / "out"
    args = {"verify": ["--reference", scale / "e" / "reference.fp32.onnx", "--candidate",
                       "torch"],
            "quantize": ["--onnx", scale / "e"],
            "bench": ["--onnx", scale / "e", "--fp8", scale / "q", "--backends", "ort-bf16"]}
    run = cli(stage, "--model", scale / "m", *args[stage], "--histories", path, "--out", out)
    assert run.returncode == 2, run.stderr[-2000:]
    assert message in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()


@pytest.fixture
def external(scale, tmp_path):
    """An export folder whose cpu rendering keeps its weights in a .data file."""
    from onerec_trt.export.stage import example_history, skeleton
    from onerec_trt.export.weights import attach_weights
    from onerec_trt.model.generate import Generator

    bundle = load_model(scale / "m")
    generator = Generator(bundle.model, 20, 10).eval()
    folder = tmp_path / "e"
    folder.mkdir()
    attach_weights(skeleton(generator, example_history(20), folder), generator.state_dict(),
                   folder / "reference.cpu.onnx", external_bytes=0)  # weights in a .data file
    for name in ("export.json", "manifest.json"):
        (folder / name).write_text((scale / "e" / name).read_text())
    return folder


def test_plugin_graphs_share_the_weights_file_and_give_the_same_items(scale, external,
                                                                      tmp_path):
    from onerec_trt.graphs import data_files, make_session

    assert cli_main(["plugins", "--onnx", str(external), "--out", str(tmp_path / "p"),
                     "--check-users", "4"]) == 0
    plugin = tmp_path / "p" / "reference.plugins.cpu.onnx"
    assert data_files(plugin) == [tmp_path / "p" / "reference.cpu.onnx.data"]
    assert data_files(plugin)[0].stat().st_ino == \
        (external / "reference.cpu.onnx.data").stat().st_ino  # a hard link: no second copy
    hist = np.load(scale / "m" / "histories.npy")
    np.testing.assert_array_equal(
        make_session(plugin).run(None, {"history": hist})[0],
        make_session(external / "reference.cpu.onnx").run(None, {"history": hist})[0])
    assert cli_main(["verify", "--model", str(scale / "m"), "--reference",
                     str(external / "reference.cpu.onnx"), "--candidate", str(plugin),
                     "--histories", str(scale / "m" / "histories.npy"), "--out",
                     str(tmp_path / "v")]) == 0  # verify runs plugin graphs itself
    assert VerifyReport.load(tmp_path / "v" / "verify.json").metrics["exact_match@10"] == 1.0


def test_a_graph_without_its_data_file_is_refused_by_every_reader(scale, external, tmp_path,
                                                                 cli):
    folder = external
    (folder / "reference.cpu.onnx.data").unlink()
    model, hist = scale / "m", scale / "m" / "histories.npy"
    for args in (["verify", "--reference", folder / "reference.cpu.onnx", "--candidate",
                  "torch", "--model", model, "--histories", hist, "--out", tmp_path / "out"],
                 ["plugins", "--onnx", folder, "--out", tmp_path / "out"],
                 ["triton", "export", "--model", model, "--onnx", folder, "--precision", "bf16",
                  "--out", tmp_path / "out"]):
        run = cli(*args)
        assert run.returncode == 2, (args[0], run.stderr[-1500:])
        assert "reference.cpu.onnx.data, which is not there" in run.stderr, args[0]
        assert not (tmp_path / "out").exists()


# --- absurd sizes are refused from the sizes, before allocation (issue 28 item 15) ------------

HUGE = "100000000000"  # 1e11 requests


def test_init_refuses_absurd_sizes_with_the_memory_they_take(tmp_path, cli):
    out = tmp_path / "m"
    small = ["--preset", "tiny", "--items", "50", "--codebook", "8", "--levels", "2"]
    assert cli("init", *small, "--histories", "4", "--out", out).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for args, message in [
        (["--preset", "tiny", "--items", "1000000000000", "--codebook", "16384"],
         "--items 1,000,000,000,000 (tiny preset: 16,000,00"),
        ([*small, "--histories", HUGE], "--histories 100,000,000,000 (int64 [100,000,000,000, "),
    ]:
        run = cli("init", *args, "--out", out, "--force")
        assert run.returncode == 2 and message in run.stderr, run.stderr[-2000:]
        assert "TiB of memory; this machine has" in run.stderr and "Traceback" not in run.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # earlier output intact


def test_import_refuses_absurd_histories_before_loading(tmp_path, cli):
    from hf_checkpoints import tiny_qwen3

    ck, cat = tiny_qwen3(tmp_path / "ck", items=10)
    for args in (["--hf", ck, "--catalogue", cat], ["--factory", "hf_checkpoints:onerec_factory"]):
        run = cli("import", *args, "--histories", HUGE, "--out", tmp_path / "m")
        assert run.returncode == 2 and "--histories 100,000,000,000" in run.stderr
        assert "of memory; this machine has" in run.stderr and "Traceback" not in run.stderr
        assert not (tmp_path / "m").exists()


def test_histories_of_absurd_declared_size_are_refused_from_the_header(scale, tmp_path, cli):
    """A 100-byte .npy whose header declares [1e11, 20] int64: refused before numpy allocates."""
    path = tmp_path / "h.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<i8", "fortran_order": False,
                                                 "shape": (int(HUGE), 20)})
    run = cli("verify", "--model", scale / "m", "--reference",
              scale / "e" / "reference.fp32.onnx", "--candidate", "torch", "--histories", path,
              "--out", tmp_path / "v")
    assert run.returncode == 2 and "(int64 [100000000000, 20]) would take 29.1 TiB" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "v").exists()

"""Bring your own model: transformers checkpoints (Qwen3 decoder-only, T5 encoder-decoder) made
with transformers here, imported, exported and checked against transformers' own constrained
beam search; quantized and linted; a protocol factory; one clear line for each bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_checkpoints import catalogue_rows, tiny_causal_lm, tiny_qwen3, tiny_t5, write_catalogue
from onerec_trt.cli import main as cli_main
from onerec_trt.model.checkpoint import load_model
from onerec_trt.model.generate import beam_search
from onerec_trt.model.hf.oracle import transformers_generate
from onerec_trt.model.hf.record import ImportRecord

MAKERS = {"qwen3": tiny_qwen3, "t5": tiny_t5}


@pytest.fixture(scope="module", params=sorted(MAKERS))
def imported(request, tmp_path_factory):
    """A tiny checkpoint of each family, imported with 100 synthetic requests, exported."""
    root = tmp_path_factory.mktemp(request.param)
    checkpoint, catalogue = MAKERS[request.param](root / "checkpoint")
    assert cli_main(["import", "--hf", str(checkpoint), "--catalogue", str(catalogue),
                     "--max-history", "6", "--histories", "100", "--out",
                     str(root / "m")]) == 0
    assert cli_main(["export", "--model", str(root / "m"), "--beam", "16", "--topk", "10",
                     "--out", str(root / "e")]) == 0
    return root


def test_import_writes_the_contract(imported):
    bundle = load_model(imported / "m")
    record = ImportRecord.load(imported / "m")
    assert bundle.config.num_items == 60 and bundle.config.codebook_sizes == [9, 9, 9]
    assert bundle.vocab.tokens[:2] == ["1000", "1001"]  # catalogue rows are items 1..N
    codes = bundle.semantic_ids.codes[1:]
    assert len(np.unique(codes, axis=0)) == 60 and codes.max() < 8  # 8: the rest of the vocab
    assert all(len(ids) == 8 for ids in record.level_ids)
    assert not any(p.suffix == ".py" for p in (imported / "m" / "hf").iterdir())
    manifest = json.loads((imported / "m" / "manifest.json").read_text())
    assert manifest["stage"] == "import" and len(manifest["model_sha256"]) == 64
    assert np.load(imported / "m" / "histories.npy").shape == (100, 6)


def test_torch_loop_matches_transformers_generate(imported):
    """The adapter in the one generation loop against transformers' own beam search."""
    bundle = load_model(imported / "m")
    record = ImportRecord.load(imported / "m")
    histories = np.load(imported / "m" / "histories.npy")
    ours = beam_search(bundle.model, torch.from_numpy(histories), 16, 10)
    oracle = transformers_generate(bundle.model.backbone, record, bundle.semantic_ids.codes,
                                   histories, 16, 10)
    assert (ours.items > 0).all()
    np.testing.assert_array_equal(ours.items, oracle.items)
    np.testing.assert_array_equal(ours.codes, oracle.codes)
    np.testing.assert_allclose(ours.scores, oracle.scores, atol=1e-4, rtol=0)
    assert np.ptp(ours.scores[:, 0]) > 0.1  # the users' recommendations differ


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_other_decoder_only_families_match_transformers_generate(kind, tmp_path):
    from onerec_trt.model.hf_import.stage import ImportOptions, import_checkpoint

    checkpoint, catalogue = tiny_causal_lm(tmp_path / "ck", kind)
    bundle = import_checkpoint(ImportOptions(out=str(tmp_path / "m"), hf=str(checkpoint),
                                             catalogue=str(catalogue), max_history=6,
                                             histories=100))
    histories = np.load(tmp_path / "m" / "histories.npy")
    ours = beam_search(bundle.model, torch.from_numpy(histories), 16, 10)
    oracle = transformers_generate(bundle.model.backbone, ImportRecord.load(tmp_path / "m"),
                                   bundle.semantic_ids.codes, histories, 16, 10)
    np.testing.assert_array_equal(ours.items, oracle.items)
    np.testing.assert_allclose(ours.scores, oracle.scores, atol=1e-4, rtol=0)


def test_verify_against_transformers_then_quantize_and_lint(imported, cli, tmp_path):
    """The done-when chain: import -> export -> verify --candidate hf (exact) -> quantize ->
    lint clean."""
    m, e = imported / "m", imported / "e"
    assert cli("verify", "--model", m, "--reference", e / "reference.fp32.onnx",
               "--candidate", "hf", "--histories", m / "histories.npy", "--users", 100,
               "--out", tmp_path / "v").returncode == 0
    report = json.loads((tmp_path / "v" / "verify.json").read_text())
    assert report["metrics"]["exact_match@10"] == 1.0
    assert report["metrics"]["scores_abs_error"]["max"] <= 1e-4
    assert report["users"] == 100 and report["backends"]["candidate"]["kind"] == "hf"
    assert cli("quantize", "--model", m, "--onnx", e, "--calib-data", m / "histories.npy",
               "--out", tmp_path / "q").returncode == 0
    quant = json.loads((tmp_path / "q" / "quantize_report.json").read_text())
    assert any(k.endswith("lm_head") for k in quant["excluded_gemms"])
    assert len(quant["quantized_gemms"]) >= 14
    result = cli("lint", tmp_path / "q" / "fp8.onnx", e / "reference.bf16.onnx")
    assert result.returncode == 0, result.stderr


def test_an_imported_model_with_a_dataset_is_evaluated(tmp_path, cli):
    """--dataset at import: evaluate scores it on the data's held-out users, baselines too."""
    checkpoint, catalogue = tiny_qwen3(tmp_path / "ck")
    rng = np.random.default_rng(0)
    data = tmp_path / "seq.txt"
    data.write_text("".join(f"u{u} " + " ".join(str(1000 + i) for i in rng.integers(0, 60, 8))
                            + "\n" for u in range(40)))
    assert cli("import", "--hf", checkpoint, "--catalogue", catalogue, "--dataset",
               "sequences", "--data", data, "--max-history", 6, "--out",
               tmp_path / "m").returncode == 0
    assert cli("evaluate", "--model", tmp_path / "m", "--baselines", "--json",
               tmp_path / "eval.json").returncode == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["users"] == 40 and "markov" in report["baselines"]


def test_integer_codes_with_a_token_pattern_give_the_same_model(tmp_path, cli):
    checkpoint, catalogue = tiny_qwen3(tmp_path / "ck", items=20)
    rows = [(item, " ".join(str(int(t[5:-1])) for t in codes.replace("><", "> <").split()))
            for item, codes in catalogue_rows(20)]
    numbers = write_catalogue(tmp_path / "numbers.tsv", rows)
    assert cli("import", "--hf", checkpoint, "--catalogue", catalogue, "--out",
               tmp_path / "a").returncode == 0
    assert cli("import", "--hf", checkpoint, "--catalogue", numbers, "--token-pattern",
               "<s_{letter}_{code}>", "--out", tmp_path / "b").returncode == 0
    a, b = (ImportRecord.load(tmp_path / x) for x in "ab")
    assert a.level_ids == b.level_ids and a.prompt == b.prompt
    assert a.prompt.template == "{history}<|sid_begin|>"  # the documented default


def test_a_protocol_factory_goes_through_export(tmp_path, cli):
    assert cli("import", "--factory", "hf_checkpoints:onerec_factory", "--histories", 8,
               "--out", tmp_path / "m").returncode == 0
    assert json.loads((tmp_path / "m" / "factory.json").read_text())["num_items"] == 30
    named = ("--factory", "hf_checkpoints:onerec_factory")  # a folder never chooses code
    assert cli("export", "--model", tmp_path / "m", *named, "--beam", 10, "--topk", 10,
               "--out", tmp_path / "e").returncode == 0
    assert cli("verify", "--model", tmp_path / "m", *named, "--reference",
               tmp_path / "e" / "reference.fp32.onnx", "--candidate", "torch", "--histories",
               tmp_path / "m" / "histories.npy", "--out", tmp_path / "v").returncode == 0


def _config_with(folder: Path, **changes) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


BAD = {
    "architecture": (lambda ck, cat: _config_with(ck, model_type="gpt2"),
                     "unsupported architecture 'gpt2'"),
    "remote code": (lambda ck, cat: _config_with(ck, auto_map={"AutoModel": "x.Y"}),
                    "trust_remote_code"),
    "missing tokens": (lambda ck, cat: write_catalogue(cat, [("1", "<s_a_1><s_b_1><s_z_1>")]),
                       "not in the tokenizer"),
    "unequal lengths": (lambda ck, cat: write_catalogue(
        cat, [("1", "<s_a_1><s_b_1><s_c_1>"), ("2", "<s_a_1><s_b_2>")]), "same length"),
    "duplicate codes": (lambda ck, cat: write_catalogue(
        cat, [("1", "<s_a_1><s_b_1><s_c_1>"), ("2", "<s_a_1><s_b_1><s_c_1>")]),
        "the same code sequence"),
}


BAD_OPTIONS = {
    "no history slot": (["--template", "<|sid_begin|>"], "must hold {history} exactly once"),
    "unknown template token": (["--template", "{history}<|nope|>"], "<|nope|> is not a token"),
    "no codes slot": (["--item-template", "<|sid_begin|>"], "must hold {codes} exactly once"),
    "bad token pattern": (["--token-pattern", "<s_{lvl}>"], "is not a valid pattern"),
    "missing catalogue": (["--catalogue", "nowhere.tsv"], "catalogue not found"),
    "factory and checkpoint": (["--factory", "hf_checkpoints:onerec_factory"],
                               "--factory takes no --hf or --catalogue"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_bad_import_options_are_one_line_and_write_nothing(case, tmp_path, cli):
    checkpoint, catalogue = tiny_qwen3(tmp_path / "ck", items=10)
    extra, message = BAD_OPTIONS[case]
    if "--catalogue" in extra:
        extra = ["--catalogue", tmp_path / extra[1]]
    args = ["import", "--hf", checkpoint, *(() if "--catalogue" in extra else
                                            ("--catalogue", catalogue)), *extra]
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("earlier output")
    result = cli(*args, "--out", tmp_path / "m", "--force")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1
    assert (tmp_path / "m" / "keep.txt").read_text() == "earlier output"  # intact
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, cli):
    checkpoint, catalogue = tiny_qwen3(tmp_path / "ck", items=10)
    spoil, message = BAD[case]
    spoil(checkpoint, catalogue)
    result = cli("import", "--hf", checkpoint, "--catalogue", catalogue, "--out",
                 tmp_path / "m")
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1
    assert not (tmp_path / "m").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_factory_without_the_protocol_is_refused(tmp_path, cli):
    result = cli("import", "--factory", "hf_checkpoints:not_a_recommender", "--out",
                 tmp_path / "m")
    assert result.returncode == 2 and "does not implement the protocol" in result.stderr
    assert not (tmp_path / "m").exists()


def test_verify_hf_refuses_a_model_that_was_not_imported(cli, tmp_path, tiny_pipeline):
    result = cli("verify", "--model", tiny_pipeline / "model", "--reference",
                 tiny_pipeline / "onnx" / "reference.fp32.onnx", "--candidate", "hf",
                 "--out", tmp_path / "v")
    assert result.returncode == 2 and "imported from a transformers checkpoint" in result.stderr




def test_run_chains_every_stage_on_an_imported_model(tmp_path, capsys):
    """`onerec-trt run --model IMPORTED`: no dataset, so its histories.npy; every stage."""
    from onerec_trt.layout import RunLayout
    from onerec_trt.verify import VerifyReport

    checkpoint, catalogue = tiny_t5(tmp_path / "ck")
    assert cli_main(["import", "--hf", str(checkpoint), "--catalogue", str(catalogue),
                     "--max-history", "4", "--histories", "24", "--out",
                     str(tmp_path / "m")]) == 0
    run = RunLayout(tmp_path / "run")
    code = cli_main(["run", "--model", str(tmp_path / "m"), "--out", str(run.root),
                     "--no-analyze"])
    verify = VerifyReport.load(run.verify / "verify.json")
    assert code == (0 if verify.passed else 1) and verify.users == 24
    summary = run.summary.read_text()
    rows = {line.split("|")[1].strip(): line for line in summary.splitlines()[4:]}
    assert list(rows) == ["evaluate", "export", "quantize", "plugins", "lint", "build",
                          "verify", "triton", "bench"]
    assert "skipped: requests from a file" in rows["evaluate"]
    assert "0 errors" in rows["lint"]
    assert json.loads((run.bench / "bench.json").read_text())
    assert "run folder:" in capsys.readouterr().out

"""Imports that would silently become another model, inputs that gave tracebacks, and damaged
imported folders: each is one line, exit 2, nothing written, at import and at every stage that
loads the folder afterwards (tiny real transformers checkpoints, the CLI in this process)."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from hf_checkpoints import catalogue_rows, edit_json, rewrite_weights, tiny_qwen3, write_catalogue
from onerec_trt.model.hf.record import ImportRecord


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A tiny Qwen3 (tied embeddings) and its 10-item catalogue, made once."""
    return tiny_qwen3(tmp_path_factory.mktemp("pristine") / "ck", items=10)


@pytest.fixture
def checkpoint(pristine, tmp_path):
    """A fresh copy of the pristine checkpoint and catalogue, for one test to spoil."""
    ck, cat = pristine
    shutil.copytree(ck, tmp_path / "ck")
    shutil.copy(cat, tmp_path / "ck.tsv")
    return tmp_path / "ck", tmp_path / "ck.tsv"


@pytest.fixture(scope="module")
def imported(pristine, tmp_path_factory):
    """The pristine checkpoint imported (the folder the damaged-folder tests copy)."""
    from onerec_trt.cli import main

    out = tmp_path_factory.mktemp("imported") / "m"
    ck, cat = pristine
    assert main(["import", "--hf", str(ck), "--catalogue", str(cat), "--max-history", "4",
                 "--histories", "8", "--out", str(out)]) == 0
    return out


def assert_refused(result, message: str, out: Path) -> None:
    """Exit 2, the one error line (and its note) naming ``message``, nothing at ``out``."""
    assert result.returncode == 2 and message in result.stderr, result.stderr
    lines = [x for x in result.stderr.splitlines() if x.strip() and not x.startswith("Note:")]
    assert len(lines) == 1 and "error:" in lines[0], result.stderr
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []


def _import(cli, ck, cat, out, *extra):
    return cli("import", "--hf", ck, "--catalogue", cat, *extra, "--out", out)


# item 8: what transformers would fill in at random
INCOMPLETE = {
    "a missing tensor": (lambda ck: rewrite_weights(
        ck, lambda k: not k.endswith("layers.1.mlp.down_proj.weight")),
        "model.layers.1.mlp.down_proj.weight is missing"),
    "qwen weights called t5": (lambda ck: edit_json(
        ck / "config.json", lambda c: c.update(model_type="t5")),
        "are not a T5ForConditionalGeneration"),
    "only the embeddings": (lambda ck: rewrite_weights(ck, lambda k: "embed_tokens" in k),
                            "is missing (and 22 more)"),
    "an extra tensor": (lambda ck: _add_tensor(ck), "extra.weight is not a weight of"),
    "a tensor of another shape": (lambda ck: edit_json(
        ck / "config.json", lambda c: c.update(intermediate_size=48)),
        "is [32, 64] in the checkpoint, [32, 48] by its config.json"),
}


def _add_tensor(ck: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(ck / "model.safetensors")
    save_file({**tensors, "extra.weight": torch.zeros(2)}, ck / "model.safetensors",
              metadata={"format": "pt"})


@pytest.mark.parametrize("case", sorted(INCOMPLETE))
def test_import_refuses_weights_transformers_would_fill_at_random(case, checkpoint, cli,
                                                                  tmp_path):
    ck, cat = checkpoint
    spoil, message = INCOMPLETE[case]
    spoil(ck)
    assert_refused(_import(cli, ck, cat, tmp_path / "m"), message, tmp_path / "m")


def test_an_untied_lm_head_that_is_missing_is_refused(cli, tmp_path):
    """Tied embeddings are not missing (every import above has them); an untied head is."""
    ck, cat = tiny_qwen3(tmp_path / "ck", items=10, tie_word_embeddings=False)
    rewrite_weights(ck, lambda k: k != "lm_head.weight")
    assert_refused(_import(cli, ck, cat, tmp_path / "m"), "lm_head.weight is missing",
                   tmp_path / "m")


def test_an_imported_folder_that_lost_a_tensor_is_refused_at_export(imported, cli, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(imported, model)
    rewrite_weights(model / "hf", lambda k: not k.endswith("layers.0.self_attn.q_proj.weight"))
    assert_refused(cli("export", "--model", model, "--beam", 4, "--topk", 4, "--out",
                       tmp_path / "e"), "q_proj.weight is missing", tmp_path / "e")


def test_loading_an_imported_folder_leaves_the_callers_rng_alone(imported):
    from onerec_trt.model.checkpoint import load_model

    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    first = load_model(imported).model.state_dict()
    assert torch.equal(torch.rand(3), expected)
    second = load_model(imported).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


# item 9: an index naming a pickle shard
def test_import_refuses_an_index_naming_a_pickle_shard(checkpoint, cli, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    ck, cat = checkpoint
    tensors = load_file(ck / "model.safetensors")
    (ck / "model.safetensors").unlink()
    torch.save(tensors, ck / "pytorch_model-00001-of-00001.bin")
    (ck / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: "pytorch_model-00001-of-00001.bin" for k in tensors}}))

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", no_unpickling)
    assert_refused(_import(cli, ck, cat, tmp_path / "m"), "not a safetensors file",
                   tmp_path / "m")


def test_sharded_safetensors_import(checkpoint, cli, tmp_path):
    """An index of safetensors shards imports; its shards are copied with it."""
    from safetensors.torch import load_file, save_file

    ck, cat = checkpoint
    tensors = load_file(ck / "model.safetensors")
    (ck / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[:5],
              "model-00002-of-00002.safetensors": names[5:]}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, ck / shard, metadata={"format": "pt"})
    (ck / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: s for s, keys in shards.items() for k in keys}}))
    assert _import(cli, ck, cat, tmp_path / "m").returncode == 0
    assert sorted(p.name for p in (tmp_path / "m" / "hf").glob("*.safetensors")) == \
        sorted(shards)


# item 10: a catalogue without a header
@pytest.mark.parametrize("pattern", [False, True])
def test_a_catalogue_without_a_header_keeps_its_first_item(pattern, checkpoint, cli,
                                                           tmp_path):
    ck, _ = checkpoint
    rows = catalogue_rows(10)
    extra: tuple = ()
    if pattern:
        rows = [(item, " ".join(t[5:-1] for t in codes.replace("><", "> <").split()))
                for item, codes in rows]
        extra = ("--token-pattern", "<s_{letter}_{code}>")
    headerless = tmp_path / "items.tsv"
    headerless.write_text("".join(f"{item}\t{codes}\n" for item, codes in rows))
    with_header = write_catalogue(tmp_path / "with_header.tsv", rows)
    for cat, out in ((headerless, "a"), (with_header, "b")):
        assert _import(cli, ck, cat, tmp_path / out, *extra).returncode == 0
        assert ImportRecord.load(tmp_path / out).num_items == 10
    assert json.loads((tmp_path / "a" / "items.json").read_text())["tokens"][0] == "1000"


def test_import_says_whether_the_catalogue_had_a_header(checkpoint, tmp_path, caplog):
    from onerec_trt.model.hf_import.stage import ImportOptions, import_checkpoint

    ck, cat = checkpoint
    caplog.set_level("INFO", logger="onerec_trt")
    import_checkpoint(ImportOptions(out=str(tmp_path / "m"), hf=str(ck), catalogue=str(cat)))
    assert "10 items (catalogue after its header line)" in caplog.messages[-1]


# item 14: inputs that gave tracebacks
def _garble(ck: Path) -> None:
    path = ck / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:40] = b"x" * 32
    path.write_bytes(bytes(data))


def _truncate(ck: Path) -> None:
    path = ck / "model.safetensors"
    path.write_bytes(path.read_bytes()[:20_000])


def _huge_header(ck: Path) -> None:
    path = ck / "model.safetensors"
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    name = next(k for k in header if k != "__metadata__")
    header[name].update(shape=[10**12, 10**6], data_offsets=[0, 4 * 10**18])
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + length:])


def _config(**changes):
    return lambda ck: edit_json(ck / "config.json", lambda c: c.update(changes))


def _pattern_catalogue(codes: str):
    return lambda ck: write_catalogue(ck.parent / "ck.tsv", [("1", codes)])


TRACEBACKS = {
    "garbled safetensors": (_garble, [], "not a safetensors file"),
    "truncated safetensors": (_truncate, [], "is truncated"),
    "huge safetensors header": (_huge_header, [], "is truncated"),
    "hidden_size a string": (_config(hidden_size="32"), [], "hidden_size is '32'"),
    "rms_norm_eps a string": (_config(rms_norm_eps="x"), [],
                              "Field 'rms_norm_eps' expected float"),
    "model_type a list": (_config(model_type=["qwen3"]), [], "unsupported architecture"),
    "layer_types a number": (_config(layer_types=2), [], "sliding-window attention"),
    "vocab_size null": (_config(vocab_size=None), [], "vocab_size is None"),
    "quantization_config": (_config(quantization_config={"quant_method": "bitsandbytes",
                                                         "load_in_8bit": True}), [],
                            "quantized checkpoint"),
    "pad_token_id past the vocabulary": (_config(pad_token_id=1000), [], "pad_token_id is 1000"),
    "nested auto_map": (_config(text_config={"model_type": "qwen3",
                                             "auto_map": {"AutoModel": "evil.Model"}}), [],
                        "trust_remote_code"),
    "superscript code": (_pattern_catalogue("1 \u00b2 3"),
                         ["--token-pattern", "<s_{letter}_{code}>"],
                         "is not a list of integer codes"),
    "5000-digit code": (_pattern_catalogue("1 2 " + "9" * 5000),
                        ["--token-pattern", "<s_{letter}_{code}>"],
                        "is not a list of integer codes"),
}


@pytest.mark.parametrize("case", sorted(TRACEBACKS))
def test_bad_checkpoints_and_catalogues_are_one_line(case, checkpoint, cli, tmp_path):
    ck, cat = checkpoint
    spoil, extra, message = TRACEBACKS[case]
    spoil(ck)
    assert_refused(_import(cli, ck, cat, tmp_path / "m", *extra), message, tmp_path / "m")


# item 19: damaged imported folders, at every stage that loads them
def _record(change):
    return lambda m: edit_json(m / "import.json", change)


def _codes(value: int):
    def spoil(model: Path) -> None:
        from safetensors.numpy import load_file, save_file

        codes = load_file(model / "semantic_ids.safetensors")["codes"]
        codes[3, 1] = value
        save_file({"codes": codes}, model / "semantic_ids.safetensors")
    return spoil


def _garble_ids(model: Path) -> None:
    path = model / "semantic_ids.safetensors"
    data = bytearray(path.read_bytes())
    data[10:30] = b"#" * 20
    path.write_bytes(bytes(data))


DAMAGED = {
    "code token id past the vocabulary": (_record(lambda d: d["level_ids"][0].__setitem__(
        0, 999)), "names token id 999"),
    "negative code token id": (_record(lambda d: d["level_ids"][0].__setitem__(0, -5)),
                               "level_ids is missing or malformed"),
    "prompt token id past the vocabulary": (_record(lambda d: d["prompt"]["item_layout"]
                                                    .__setitem__(0, 999)), "names token id 999"),
    "max_history a string": (_record(lambda d: d.update(max_history="20")),
                             "max_history is missing or malformed"),
    "pad_id past the vocabulary": (_record(lambda d: d.update(pad_id=1000)),
                                   "names token id 1000"),
    "another family": (_record(lambda d: d.update(family="encoder-decoder",
                                                  decoder_start_id=0)), "names a qwen3"),
    "garbled semantic IDs": (_garble_ids, "not a safetensors file"),
    "a code past its level": (_codes(50), "holds codes outside the catalogue's levels"),
    "a negative code": (_codes(-3), "holds codes outside the catalogue's levels"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_imported_folder_is_one_line_at_export(case, imported, cli, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(imported, model)
    spoil, message = DAMAGED[case]
    spoil(model)
    assert_refused(cli("export", "--model", model, "--beam", 4, "--topk", 4, "--out",
                       tmp_path / "e"), message, tmp_path / "e")

"""The import stage: a transformers checkpoint + an item catalogue -> a model folder.

The folder holds the checkpoint (``hf/``: config, safetensors, tokenizer; hard-linked where the
file system allows, never any code), the semantic IDs the catalogue defines (each level's codes
are that level's distinct tokens, in token-id order), ``items.json`` (catalogue row order: model
item ids 1..N), ``import.json`` (family, templates as token ids, code token ids),
``histories.npy`` (synthetic requests, for ``--histories`` where no dataset is recorded) and a
manifest. Everything is checked, and the adapter built once, before anything is written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from onerec_trt.artifacts import write_json
from onerec_trt.errors import user_error
from onerec_trt.model.folder import HISTORIES
from onerec_trt.stage_runner import check_stage_out, run_stage

log = logging.getLogger(__name__)

COPIED = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
          "special_tokens_map.json", "*.safetensors", "*.safetensors.index.json")


@dataclass
class ImportOptions:
    out: str
    hf: str | None = None  # a transformers checkpoint folder
    catalogue: str | None = None  # TSV: item_id, code tokens
    factory: str | None = None  # "module:function" returning a protocol object
    token_pattern: str | None = None  # integer codes -> tokens, e.g. "<s_{letter}_{code}>"
    template: str | None = None  # None: the family's default (prompt.default_templates)
    item_template: str | None = None
    max_history: int = 20  # S: history items in a prompt
    dataset: str | None = None  # the interaction data the catalogue's item ids come from
    data: str | None = None
    columns: str | None = None
    histories: int = 64  # synthetic requests written to histories.npy
    seed: int = 0
    training: dict = field(default_factory=dict)  # merged into training.json (train --arch)
    force: bool = False


def import_checkpoint(opts: ImportOptions):
    """``onerec-trt import``: returns the imported ``ModelBundle`` after writing ``opts.out``."""
    check_stage_out(opts)  # --out first, before any other check or work
    if opts.factory:
        from onerec_trt.model.hf_import.factory import import_factory

        return import_factory(opts)
    if not opts.hf or not opts.catalogue:
        raise user_error("import needs --hf DIR and --catalogue FILE (or --factory "
                         "module:function)")
    if opts.max_history < 1:
        raise user_error(f"--max-history must be positive, got {opts.max_history}")
    from onerec_trt.data.memory import require_histories_memory

    require_histories_memory(opts.histories, opts.max_history)  # before loading anything
    t0 = time.perf_counter()
    record, ids, vocab, backbone, header = _checked_import(opts)
    bundle = _bundle(opts, record, ids, vocab, backbone)

    def write(run):
        _copy_checkpoint(Path(opts.hf), run.folder / "hf")
        _write_contract(run.folder, opts, record, ids, vocab)
        run.options = _options(opts)
        run.inputs.update(hf=str(Path(opts.hf).resolve()), catalogue=opts.catalogue)
        run.extra["model_sha256"] = contract_hash(run.folder)
        return bundle

    run_stage("import", opts, write)
    params = sum(p.numel() for p in backbone.parameters())
    log.info(f"imported {opts.hf} -> {opts.out}: {record.model_type} ({record.family}), "
             f"{params:,} parameters, {record.num_items:,} items (catalogue "
             f"{'after its header line' if header else 'without a header line'}) in "
             f"{len(ids.codebook_sizes)} levels of "
             f"{', '.join(str(len(t)) for t in record.level_ids)} code tokens, prompt of "
             f"{_prompt_length(record)} tokens, {time.perf_counter() - t0:.1f}s")
    return bundle


def _checked_import(opts: ImportOptions):
    import torch

    from onerec_trt.data.vocab import ItemVocab
    from onerec_trt.model.hf.catalogue import level_vocab, read_catalogue
    from onerec_trt.model.hf.families import (
        load_tokenizer,
        load_transformers_model,
        read_checkpoint_config,
    )
    from onerec_trt.model.hf.prompt import default_templates, parse_prompt
    from onerec_trt.model.hf.record import ImportRecord
    from onerec_trt.model.tokenizer import SemanticIds

    config, family = read_checkpoint_config(opts.hf)
    tokenizer = load_tokenizer(opts.hf)
    catalogue = read_catalogue(opts.catalogue, opts.token_pattern,
                               lambda token: tokenizer.token_to_id(token) is not None)
    levels = level_vocab(catalogue, tokenizer.token_to_id)
    template, item_template = default_templates(
        family.kind, lambda token: tokenizer.token_to_id(token) is not None)
    prompt = parse_prompt(opts.template or template, opts.item_template or item_template,
                          tokenizer)
    vocab_size = config.get("vocab_size")
    largest = max(max(ids) for ids in levels.token_ids)
    if isinstance(vocab_size, int) and largest >= vocab_size:
        raise user_error(f"the tokenizer gives catalogue token id {largest}, the model's "
                         f"vocabulary has {vocab_size} tokens", "the tokenizer and the weights "
                                                               "come from different checkpoints")
    start = config.get("decoder_start_token_id", config.get("pad_token_id", 0)) \
        if family.kind == "encoder-decoder" else None
    record = ImportRecord(family.kind, config["model_type"], family.transformers_class, prompt,
                          levels.token_ids, opts.max_history, len(catalogue.item_ids),
                          pad_id=_pad_id(config), decoder_start_id=start,
                          source=str(Path(opts.hf).resolve()))
    _check_positions(config, record)
    ids = SemanticIds(levels.codes, record.codebook_sizes,
                      {"imported": f"{len(catalogue.item_ids)} items from {opts.catalogue}"})
    backbone = load_transformers_model(opts.hf, family, torch.float32)
    return record, ids, ItemVocab(catalogue.item_ids), backbone, catalogue.header


def _pad_id(config: dict) -> int:
    pad = config.get("pad_token_id")
    return pad if isinstance(pad, int) and pad >= 0 else 0


def _prompt_length(record) -> int:
    p = record.prompt
    width = sum(len(record.level_ids) if t < 0 else 1 for t in p.item)
    return len(p.prefix) + record.max_history * width + len(p.suffix)


def _check_positions(config: dict, record) -> None:
    """A decoder-only prompt and its codes must fit the model's positions."""
    limit = config.get("max_position_embeddings")
    need = _prompt_length(record) + len(record.level_ids)
    if record.family == "decoder-only" and isinstance(limit, int) and need > limit:
        raise user_error(f"a prompt of {record.max_history} history items and its codes take "
                         f"{need} positions, the model has {limit}", "lower --max-history")


def _bundle(opts, record, ids, vocab, backbone):
    """The bundle the stage returns; building the adapter also checks the checkpoint fits."""
    from onerec_trt.model.bundle import ModelBundle
    from onerec_trt.model.hf.loader import ImportedConfig, build_adapter

    config = ImportedConfig(record.num_items, record.codebook_sizes, record.max_history,
                            record.family, record.model_type)
    return ModelBundle(build_adapter(backbone, record, ids), config, ids, vocab, None,
                       _training(opts))


def _training(opts: ImportOptions) -> dict:
    record = {"imported": True, "dataset": opts.dataset,
              "data": str(Path(opts.data).resolve()) if opts.data else None,
              "columns": opts.columns, "untrained": False}
    return {**record, **opts.training}


def _options(opts: ImportOptions) -> dict:
    return {k: v for k, v in asdict(opts).items() if k != "training"}


def _copy_checkpoint(source: Path, target: Path) -> None:
    """The checkpoint's config, weights and tokenizer files (never code): hard links where the
    file system allows, copies otherwise."""
    target.mkdir()
    for pattern in COPIED:
        for path in sorted(source.glob(pattern)):
            try:
                os.link(path, target / path.name)
            except OSError:
                shutil.copy2(path, target / path.name)


def _write_contract(folder: Path, opts: ImportOptions, record, ids, vocab) -> None:
    import numpy as np

    from onerec_trt.model.synthetic import synthetic_histories

    record.save(folder)
    ids.save(folder)
    vocab.save(folder / "items.json")
    write_json(folder / "training.json", _training(opts))
    np.save(folder / HISTORIES, synthetic_histories(opts.histories, opts.max_history,
                                                    record.num_items, opts.seed))


def contract_hash(folder: Path) -> str:
    """The model's identity: the weights, the import record and the semantic IDs."""
    from onerec_trt.artifacts import sha256_file

    digest = hashlib.sha256()
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and (p.suffix == ".safetensors" or p.name == "import.json"))
    for name in names:
        digest.update(f"{name}:{sha256_file(folder / name)}\n".encode())
    return digest.hexdigest()

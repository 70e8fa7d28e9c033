"""The init stage: a model folder with random weights and a synthetic catalogue, so every later
stage can be run at any size without training (``onerec-trt init``).

The weights are the training init (``OneRecModel.reset_parameters``), built on ``meta`` and
materialised once, so a 1B-parameter model never exists twice. The catalogue is ``items``
random unique semantic IDs in ``levels`` x ``codebook`` codes; model item ids are 1..N (the
vocabulary's tokens are "1".."N"). The folder says it is untrained (``training.json``,
manifest), and holds ``histories.npy``: synthetic requests for the stages that take
``--histories`` (a model without a dataset has no users to sample).
This module imports nothing heavy at load time.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from onerec_trt.errors import user_error
from onerec_trt.model.folder import HISTORIES
from onerec_trt.stage_runner import StagedRun, check_stage_out, run_stage

log = logging.getLogger(__name__)

TOPK_LIMIT = 3840  # TensorRT's TopK: the largest beam
# every beam TensorRT allows keeps a step's flat candidate index (beam x codebook) in int32
MAX_CODEBOOK = (2**31 - 1) // TOPK_LIMIT
ITEM_BYTES = 100  # at least, per item: its id string, list slot and dict entry (ItemVocab)


@dataclass
class InitOptions:
    out: str
    preset: str = "small"
    items: int = 10_000  # catalogue size N; model item ids 1..N
    codebook: int = 256  # codes per level
    levels: int = 3
    histories: int = 64  # synthetic requests written to histories.npy
    seed: int = 0
    force: bool = False


def _validate(opts: InitOptions) -> None:
    from onerec_trt.data import MIN_ITEMS
    from onerec_trt.model.config import presets

    if opts.preset not in presets():
        raise user_error(f"unknown preset {opts.preset!r}", f"expected one of: "
                                                            f"{', '.join(presets())}")
    if opts.items < MIN_ITEMS:
        raise user_error(f"--items must be at least {MIN_ITEMS}, got {opts.items}",
                         f"export traces a history of item ids 1..{MIN_ITEMS}")
    for name in ("levels", "histories"):
        if getattr(opts, name) <= 0:
            raise user_error(f"--{name} must be positive, got {getattr(opts, name)}")
    if not 2 <= opts.codebook <= MAX_CODEBOOK:
        raise user_error(f"--codebook {opts.codebook} is outside 2..{MAX_CODEBOOK:,}",
                         f"a beam step's flat candidate index (beam x codebook) must fit int32 "
                         f"for every beam TensorRT's TopK allows (up to {TOPK_LIMIT})")
    space = opts.codebook ** opts.levels
    if opts.items > space:
        raise user_error(f"--items {opts.items:,} is above the code space: {opts.levels} levels "
                         f"of {opts.codebook} codes hold {space:,} distinct semantic IDs",
                         "raise --codebook or --levels")
    _require_memory(opts)


def _require_memory(opts: InitOptions) -> None:
    """Refuse sizes this machine cannot hold, from the sizes alone: the fp32 weights (counted on
    ``meta``), the catalogue's codes and vocabulary, and the synthetic requests."""
    import torch

    from onerec_trt.data.memory import require_histories_memory, require_memory
    from onerec_trt.model.config import ModelConfig
    from onerec_trt.model.onerec import OneRecModel

    cfg = ModelConfig.from_preset(opts.preset, num_items=opts.items,
                                  codebook_sizes=[opts.codebook] * opts.levels)
    with torch.device("meta"):
        params = sum(p.numel() for p in OneRecModel(cfg).parameters())
    need = 4 * params + opts.items * (8 * (2 * opts.levels + 1) + ITEM_BYTES)
    require_memory(need, f"--items {opts.items:,} ({opts.preset} preset: {params:,} fp32 "
                         f"parameters, the items' codes and ids)",
                   "lower --items, or use a smaller --preset")
    require_histories_memory(opts.histories, cfg.max_history)


def init_stage(opts: InitOptions):
    """``onerec-trt init``: returns the ``ModelBundle`` after writing ``opts.out``."""
    import torch

    check_stage_out(opts)  # --out first, before any other check or work
    _validate(opts)
    bundle = run_stage("init", opts, lambda run: _init(opts, run))
    params = sum(p.numel() for p in bundle.model.parameters())
    log.info(f"wrote {opts.out}: untrained {opts.preset} model, {params / 1e6:,.1f}M "
             f"parameters, {opts.items:,} items in {opts.levels} x {opts.codebook} codes, "
             f"{HISTORIES} ({opts.histories} synthetic requests; torch {torch.__version__})")
    return bundle


def _init(opts: InitOptions, run: StagedRun):
    """The random model, its catalogue and synthetic requests, written into ``run.folder``."""
    import numpy as np

    from onerec_trt.data.vocab import ItemVocab
    from onerec_trt.model.checkpoint import ModelBundle, save_model
    from onerec_trt.model.config import ModelConfig
    from onerec_trt.model.synthetic import random_codes, random_model, synthetic_histories
    from onerec_trt.model.tokenizer import SemanticIds

    sizes = [opts.codebook] * opts.levels
    codes = random_codes(opts.items, sizes, opts.seed)
    ids = SemanticIds(np.concatenate([np.full((1, opts.levels), -1), codes]), sizes,
                      {"synthetic": f"{opts.items} random unique semantic IDs (seed "
                                    f"{opts.seed})"})
    cfg = ModelConfig.from_preset(opts.preset, num_items=opts.items, codebook_sizes=sizes)
    model = random_model(cfg, ids, seed=opts.seed)
    vocab = ItemVocab([str(i) for i in range(1, opts.items + 1)])
    training = {"untrained": True, "init": asdict(opts), "dataset": None}
    bundle = ModelBundle(model, cfg, ids, vocab, None, training)
    params = sum(p.numel() for p in model.parameters())
    save_model(run.folder, bundle)
    np.save(run.folder / HISTORIES, synthetic_histories(opts.histories, cfg.max_history,
                                                        opts.items, opts.seed))
    run.extra.update(untrained=True, model={"parameters": params, "config": cfg.to_dict()})
    return bundle

"""``onerec-trt import --factory``: a model folder that names the user's factory (how loading
calls it again, and what it refuses: ``model/hf/factory.py``)."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict

import numpy as np
import torch

from onerec_trt.artifacts import write_json
from onerec_trt.errors import user_error
from onerec_trt.model.folder import FACTORY_JSON, HISTORIES
from onerec_trt.model.hf.factory import call_factory, catalogue_hash
from onerec_trt.stage_runner import check_stage_out, run_stage

log = logging.getLogger(__name__)


def _state_hash(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def import_factory(opts):
    """``onerec-trt import --factory``: a model folder that names the user's factory."""
    from onerec_trt.data.vocab import ItemVocab
    from onerec_trt.model.synthetic import synthetic_histories
    from onerec_trt.model.tokenizer import SemanticIds

    if opts.hf or opts.catalogue:
        raise user_error("--factory takes no --hf or --catalogue (the object carries its "
                         "catalogue)")
    t0 = time.perf_counter()
    check_stage_out(opts)  # before calling the factory (the runner checks again)
    model = call_factory(opts.factory)
    ids = model.semantic_ids
    codes, sizes = np.asarray(ids.codes, dtype=np.int64), list(ids.codebook_sizes)
    vocab = ItemVocab([str(i) for i in getattr(model, "item_ids", range(1, len(codes)))])
    if len(vocab) != len(codes) - 1:
        raise user_error(f"--factory: item_ids lists {len(vocab)} items, the semantic IDs "
                         f"{len(codes) - 1}")
    record = {"factory": opts.factory, "max_history": model.max_history,
              "num_items": len(codes) - 1, "codebook_sizes": sizes,
              "catalogue_sha256": catalogue_hash(codes, sizes)}

    def write(run):
        tmp = run.folder
        write_json(tmp / FACTORY_JSON, record)
        SemanticIds(codes, sizes).save(tmp)
        vocab.save(tmp / "items.json")
        write_json(tmp / "training.json", {"imported": True, "dataset": opts.dataset,
                                           "factory": opts.factory})
        np.save(tmp / HISTORIES, synthetic_histories(opts.histories, model.max_history,
                                                     len(codes) - 1, opts.seed))
        run.options = {k: v for k, v in asdict(opts).items() if k != "training"}
        run.extra["model_sha256"] = _state_hash(model)

    run_stage("import", opts, write)
    log.info(f"imported factory {opts.factory} -> {opts.out}: {len(codes) - 1:,} items, "
             f"{time.perf_counter() - t0:.1f}s")

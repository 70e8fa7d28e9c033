"""The second way in: a user's own torch code. ``--factory module:function`` names a function
in the user's environment (never in a checkpoint) that returns a ``torch.nn.Module``
implementing the protocol (``model/protocol.py``) with a ``max_history`` attribute, and
optionally ``item_ids`` (the data's item ids of model items 1..N; "1".."N" otherwise).

The import stage (``model/hf_import/factory.py``) records the name (``factory.json``) and the
catalogue the object had; loading (here) calls the function again, only when the user names it
too (``--factory``, model/hf/trust.py: a folder never chooses code), and refuses an object whose
catalogue changed since the import.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path

import numpy as np
import torch

from onerec_trt.artifacts import json_object
from onerec_trt.errors import user_error
from onerec_trt.model.bundle import ModelBundle
from onerec_trt.model.folder import FACTORY_JSON
from onerec_trt.model.hf.trust import check_factory, is_factory_name, named_factory
from onerec_trt.model.protocol import GenerativeRecommender

NEEDS = ("a torch.nn.Module with semantic_ids (codes, trie, codebook_sizes), max_history, "
         "encode_context, decode_step and reorder_cache: see model/protocol.py")


def call_factory(name: str) -> torch.nn.Module:
    """Import ``module:function`` from the user's environment and call it; check the result.
    Whatever the user's code raises (a syntax error, an exception, ``sys.exit``) is one line."""
    if not is_factory_name(name):
        raise user_error(f"--factory {name!r} is not module:function", "e.g. mypkg.models:make")
    module_name, _, function = name.partition(":")
    make = getattr(_import_module(module_name), function, None)
    if not callable(make):
        raise user_error(f"--factory: {module_name} has no function {function!r}")
    model = _call(name, make)
    _check_protocol(name, model)
    return model.eval()


def _import_module(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise user_error(f"--factory: cannot import {module_name!r} ({exc})",
                         "the module must be importable in this environment (PYTHONPATH)") \
            from None
    except (Exception, SystemExit) as exc:  # its own code failed while importing
        raise user_error(f"--factory: importing {module_name} failed: {_one_line(exc)}") \
            from exc


def _call(name: str, make):
    try:
        return make()
    except SystemExit as exc:  # must not end the command as if it had succeeded
        raise user_error(f"--factory {name} called sys.exit({exc.code!r}) instead of returning "
                         "a model") from None
    except Exception as exc:
        raise user_error(f"--factory {name} raised {_one_line(exc)}",
                         "the factory is called with no arguments and returns the model") \
            from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _check_protocol(name: str, model: object) -> None:
    ids = getattr(model, "semantic_ids", None)
    missing = [] if isinstance(model, torch.nn.Module) else ["not a torch.nn.Module"]
    if not isinstance(model, GenerativeRecommender):
        missing.append("not the protocol (encode_context, decode_step, reorder_cache, "
                       "semantic_ids)")
    for attr in ("codes", "trie", "codebook_sizes"):
        if ids is not None and not hasattr(ids, attr):
            missing.append(f"semantic_ids has no {attr}")
    history = getattr(model, "max_history", None)
    if not isinstance(history, int) or isinstance(history, bool) or history < 1:
        missing.append("no positive integer max_history")
    if missing:
        raise user_error(f"--factory {name} returned a {type(model).__name__} that does not "
                         f"implement the protocol: {'; '.join(missing)}", NEEDS)


def catalogue_hash(codes: np.ndarray, sizes: list[int]) -> str:
    """What factory.json records of the object's catalogue, checked again at every load."""
    data = np.ascontiguousarray(np.asarray(codes, dtype=np.int64)).tobytes()
    return hashlib.sha256(data + repr(list(sizes)).encode()).hexdigest()


def load_factory_model(folder: Path, dtype: torch.dtype | None = None,
                       factory: str | None = None) -> ModelBundle:
    """A factory folder's bundle: calls the recorded factory only when the user named it
    (``factory``, else ``--factory`` / ``trusted_factory``: model/hf/trust.py)."""
    from onerec_trt.data.vocab import ItemVocab
    from onerec_trt.model.hf.loader import ImportedConfig

    record = json_object(folder / FACTORY_JSON)
    name = check_factory(folder, record.get("factory"), factory or named_factory())
    print(f"running factory {name} for {folder} (named by you)", file=sys.stderr)
    model = call_factory(name)
    ids = model.semantic_ids
    if catalogue_hash(np.asarray(ids.codes), list(ids.codebook_sizes)) != \
            record.get("catalogue_sha256"):
        raise user_error(f"{name} now returns another catalogue than when "
                         f"{folder} was imported", "import it again (onerec-trt import "
                                                   "--factory ... --force)")
    if dtype is not None:
        model = model.to(dtype)
    # the catalogue matched its recorded hash: its sizes are the record's, read from the object
    config = ImportedConfig(len(ids.codes) - 1, list(ids.codebook_sizes), model.max_history,
                            "factory", name)
    return ModelBundle(model, config, ids, ItemVocab.load(folder / "items.json"), folder,
                       json_object(folder / "training.json"))

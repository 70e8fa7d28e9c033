"""Peers: what a user runs today instead of this project, timed beside its backends.

``hf``: transformers' own ``generate(num_beams=B, num_return_sequences=K, max_new_tokens=L,
length_penalty=0, prefix_allowed_tokens_fn=<catalogue trie>)`` on an imported model's
checkpoint (``model/hf/oracle.py``), one left-padded ``generate`` call per request. A native
model has no transformers checkpoint: its peer is the project's torch loop (``torch-fp32``).
``optimum``: Optimum ONNX Runtime; skipped here with the exact reason (``optimum_reason``).

A peer is compared on speed only when it returned the same items as the project's graph for
every user timed (``check``); otherwise it is reported as disagreeing and no ratio is formed.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util

import numpy as np

from onerec_trt.bench.backends import Found
from onerec_trt.bench.stats import paired_ratio
from onerec_trt.errors import user_error

PEERS = ("hf", "optimum")
NATIVE_PEER = "torch-fp32"  # a native model's peer: the project's own torch loop
# the project backend the peers are checked and timed against, first that ran
PROJECT_REFERENCES = ("ort-fp32", "ort-bf16", "torch-fp32", "torch-bf16")
SCORE_TOLERANCE = 1e-4  # identical lists; scores within this (fp32 rounding of a sum of logs)

DIFFERENCES = {
    "hf": "transformers `generate` runs the prompt through the model once per beam (B copies of "
          "the prefill), recomputes the beam bookkeeping in Python and asks a Python "
          "`prefix_allowed_tokens_fn` callback for every beam at every step (a trie lookup per "
          "beam); a batch is left-padded to its longest prompt. The project's graph prefills "
          "once per user and keeps the trie in the graph (CSR arrays, one gather per step).",
    NATIVE_PEER: "the project's own generation loop in torch (eager ops, fp32): the same "
                 "algorithm as the graph (one prefill per user, the trie as tensors), without "
                 "ONNX Runtime's graph optimizations. A native model has no transformers "
                 "checkpoint, so this is its peer.",
}


def parse_peers(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise user_error(f"unknown peer {unknown[0]!r}", f"known peers: {', '.join(PEERS)}")
    return [n for n in PEERS if n in names]


def optimum_reason() -> str:
    """Why the Optimum ONNX Runtime peer does not run here (never a silent skip)."""
    transformers = _version("transformers")
    pin = ("optimum-onnx 0.1.0, the current release, requires transformers<4.58 and optimum~=2.1 "
           "and fails to import with transformers 5.x ('cannot import name "
           "get_parameter_dtype'); this environment has transformers "
           f"{transformers}, which the project needs. It runs only in a separate environment "
           "(transformers 4.57.6, huggingface_hub 0.36.0, tokenizers 0.22.1, optimum 2.1.0 "
           "installed --no-deps beside torch), which bench does not create")
    if importlib.util.find_spec("optimum") is None:
        return f"optimum-onnx is not installed: {pin}"
    return f"not run: {pin}"


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def discover_peers(peers: list[str], imported: bool, has: list[str]
                   ) -> tuple[list[Found], dict[str, str], dict[str, str]]:
    """(peer backends to add, {peer: why skipped}, {peer: note}) for ``peers``; ``has``: the
    project backends already requested."""
    found, skipped, notes = [], {}, {}
    for peer in peers:
        if peer == "optimum":
            skipped[peer] = optimum_reason()
        elif not imported:
            notes[NATIVE_PEER] = ("native model (no transformers checkpoint): the project's "
                                  "torch loop torch-fp32 is the peer")
            if NATIVE_PEER not in has:
                found.append(Found(NATIVE_PEER, "torch", "fp32",
                                   description="torch generation loop, fp32 (the peer)"))
        elif importlib.util.find_spec("transformers") is None:
            skipped[peer] = "transformers is not installed"
        else:
            found.append(Found("hf", "hf", "fp32", description=(
                "transformers generate + prefix_allowed_tokens_fn (the catalogue trie), fp32, "
                "one left-padded generate call per request")))
    return found, skipped, notes


def reference_of(ran: list[str], peers: list[str]) -> str | None:
    """The project backend peers are measured against."""
    return next((n for n in PROJECT_REFERENCES if n in ran and n not in peers),
                next((n for n in ran if n not in peers), None))


def check(reference: dict, peer: dict) -> dict:
    """Per-user comparison of two backends' timed answers ({user: {items, scores}})."""
    users = sorted(set(reference) & set(peer))
    identical, diffs = 0, []
    for user in users:
        a, b = reference[user], peer[user]
        same = a["items"] == b["items"]
        sa, sb = np.asarray(a["scores"], np.float64), np.asarray(b["scores"], np.float64)
        live = (sa > -1e29) & (sb > -1e29)
        diff = float(np.abs(sa - sb)[live].max()) if live.any() else 0.0
        identical += bool(same and diff <= SCORE_TOLERANCE)
        if same:
            diffs.append(diff)
    return {"users": len(users), "identical": identical,
            "max_score_diff": max(diffs) if diffs else None,
            "agrees": bool(users) and identical == len(users)}


def speedups(timings: dict[str, dict[int, list[float]]], peer: str, project: list[str]) -> dict:
    """{project backend: {batch: paired ratio of the peer's latency over the backend's}}: how
    many times faster the backend answered the same users, per repetition."""
    out = {}
    for name in project:
        by_batch = {str(b): paired_ratio(timings[peer][b], timings[name][b])
                    for b in sorted(set(timings.get(peer, {})) & set(timings.get(name, {})))
                    if len(timings[peer][b]) == len(timings[name][b]) and timings[name][b]}
        if by_batch:
            out[name] = by_batch
    return out

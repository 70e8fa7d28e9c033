"""``polygraphy_check.py``, written beside verify.md: the tensor, overlap and finite-score gates
redone with Polygraphy's own API on the saved runs, exiting 0 on a pass. Polygraphy's CLI
compares every output elementwise, so its plain command ends FAILED for ``items``/``codes``
wherever FP8 reorders two items; this script encodes the gates instead. It also serves
``polygraphy run ... --compare-func-script polygraphy_check.py`` (its ``compare_outputs``)."""

from __future__ import annotations

SCRIPT = "polygraphy_check.py"

_TEMPLATE = '''\
#!/usr/bin/env python3
"""Written by `onerec-trt verify` beside verify.md: its scores-tensor, overlap@10 and
finite-score gates, redone with Polygraphy's API on the runs saved here. Exit 0: they pass,
1: one fails. The Recall/NDCG gates need the held-out targets, which are not saved here (their
numbers are in verify.json).

    python polygraphy_check.py           # the saved reference and candidate runs
    python polygraphy_check.py --rerun   # first rerun the ONNX graphs on inputs.json

`compare_outputs` below is also a Polygraphy comparison function: with
`polygraphy run REFERENCE.onnx --onnxrt --load-inputs inputs.json --load-outputs outputs.json
--compare-func-script polygraphy_check.py` the CLI checks `scores` with these tolerances (per
batch) and leaves `items`/`codes` to the overlap gate.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from polygraphy.comparator import Comparator, RunResults, SimpleCompareFunc

from onerec_trt.metrics import overlap  # the one definition: item -1 (a dead beam) never counts

HERE = Path(__file__).resolve().parent
REFERENCE = {reference!r}
CANDIDATE = {candidate!r}
SCORES_ATOL = {atol!r}
SCORES_RTOL = {rtol!r}
SCORES_QUANTILE = {quantile!r}
MIN_OVERLAP_AT_10 = {min_overlap!r}


def _only_scores(name, index, result):
    return ["scores"] if name == "scores" else []


# the scores tensor: the 99th percentile of |difference| within the tolerances
compare_outputs = SimpleCompareFunc(
    atol={{"scores": SCORES_ATOL}}, rtol={{"scores": SCORES_RTOL}},
    check_error_stat={{"scores": "quantile"}}, error_quantile={{"scores": SCORES_QUANTILE}},
    infinities_compare_equal=True, find_output_func=_only_scores)


def rerun(saved):
    """Each ONNX graph run again by Polygraphy on inputs.json; a torch or TensorRT side, or a
    plugin graph, keeps its saved run. ORT_ENABLE_BASIC: ONNX Runtime's default (ALL) fuses
    the FP8 QDQ pairs into nodes it has no FP8 kernel for."""
    import onnxruntime as ort
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy.json import load_json

    feeds = load_json(str(HERE / "inputs.json"))
    results = RunResults()
    for (name, iterations), path in zip(saved, (REFERENCE, CANDIDATE)):
        if not path.endswith(".onnx") or path.endswith(".plugins.cpu.onnx"):
            print(f"{{name}}: the saved run ({{path}} is not a plain ONNX graph)")
            results.append((name, iterations))
            continue
        session = SessionFromOnnx(path, graph_optimization_level=(
            ort.GraphOptimizationLevel.ORT_ENABLE_BASIC))
        results.extend(Comparator.run([OnnxrtRunner(session, name=name + ":rerun")],
                                      data_loader=feeds))
    return results


def _stacked(iterations, output):
    return np.concatenate([np.asarray(it[output]) for it in iterations])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rerun", action="store_true",
                        help="rerun the ONNX graphs on inputs.json instead of the saved runs")
    args = parser.parse_args(argv)
    results = RunResults.load(str(HERE / "outputs.json"))
    if args.rerun:
        results = rerun(results)
    scores_ok = bool(Comparator.compare_accuracy(results, compare_func=compare_outputs))
    (_, ref), (_, cand) = results
    mean_overlap = float(overlap(_stacked(ref, "items"), _stacked(cand, "items"), 10).mean())
    nan_users = sum(int(np.isnan(_stacked(it, "scores")).any(axis=1).sum()) for it in (ref, cand))
    gates = {{
        "scores_tensor": (scores_ok, f"p{{SCORES_QUANTILE * 100:g}} |diff| <= {{SCORES_ATOL}} or "
                                     f"rel <= {{SCORES_RTOL}}"),
        "overlap@10": (mean_overlap >= MIN_OVERLAP_AT_10,
                       f"mean {{mean_overlap:.4f}}, gate >= {{MIN_OVERLAP_AT_10}}"),
        "finite_scores": (nan_users == 0, f"{{nan_users}} users with NaN scores"),
    }}
    for name, (ok, what) in gates.items():
        print(f"{{name}}: {{'pass' if ok else 'FAIL'}} ({{what}})")
    passed = all(ok for ok, _ in gates.values())
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
'''


def check_script(reference, candidate, scores_atol: float, scores_rtol: float,
                 scores_quantile: float, min_overlap: float) -> str:
    """The script's text with the stage's backends (``onerec_trt.backends`` objects: a graph by
    its absolute path, anything else by name), tolerances and overlap gate filled in."""

    def where(backend) -> str:
        return str(backend.path.resolve()) if backend.kind == "ort" else backend.name

    return _TEMPLATE.format(reference=where(reference), candidate=where(candidate),
                            atol=scores_atol, rtol=scores_rtol, quantile=scores_quantile,
                            min_overlap=min_overlap)

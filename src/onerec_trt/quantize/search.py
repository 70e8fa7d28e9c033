"""``quantize --search``: the FP8 policy with the largest FP8 share of a request's FLOPs whose
top-10 agrees with bf16 on validation users (never test users) at the target overlap@10: the
one-sided 95% lower confidence bound of the measured overlap@10 must reach the target (the mean
of the best of many candidates on one sample overstates it on other users).

Measured, not predicted: every candidate runs the real generation loop with ModelOpt's
calibrated FP8 quantizers (fake quantization in torch: the numbers the exported Q/DQ graph
computes) on validation histories, against the same loop in bf16.

1. Calibration: each ModelOpt algorithm calibrates every GEMM; the one with the best overlap@10
   with every GEMM in FP8 is kept.
2. Sensitivity: one layer at a time in FP8, the rest bf16: the overlap@10 each layer alone loses.
3. Greedy: from every GEMM in FP8, keep layers in bf16 in order of overlap lost per FLOP until
   the target holds.
4. Give back: each layer kept in bf16, largest FLOPs first, goes back to FP8 if the target still
   holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from onerec_trt.quantize.flops import RequestFlops
from onerec_trt.quantize.speedup import LABEL, predicted_speedup, speedup_text


@dataclass
class Trial:
    step: str  # calibration | sensitivity | all | all but heads | greedy | give back
    action: str
    bf16_layers: int
    fp8_flop_share: float
    overlap_at_10: float
    overlap_lower_95: float  # one-sided 95% lower confidence bound over the users
    accepted: bool = False
    predicted_speedup: dict = field(default_factory=dict)  # GPU -> x over bf16 (speedup.py)
    quality_change: dict = field(default_factory=dict)  # recall@10/ndcg@10 -> relative change


@dataclass
class SearchResult:
    bf16_layers: list[str]
    overlap_at_10: float
    overlap_lower_95: float
    fp8_flop_share: float
    sensitivity: dict[str, float]  # layer -> overlap@10 lost with only that layer in FP8
    trials: list[Trial] = field(default_factory=list)
    predicted_speedup: dict = field(default_factory=dict)  # the chosen policy's, per GPU

    def to_json(self) -> dict:
        return asdict(self)


log = logging.getLogger(__name__)

# bf16 layers -> (overlap@10, lower) or (overlap@10, lower, {metric: relative change vs bf16})
Evaluate = Callable[[set[str]], tuple]


def search_layers(evaluate: Evaluate, layers: list[str], flops: RequestFlops, target: float,
                  forced: Iterable[str] = (), heads: Iterable[str] = ()) -> SearchResult:
    """Steps 2-4 of the module docstring on one calibrated model. ``heads``: the output heads;
    one more trial, every GEMM but these in FP8, measures "all-FP8" as the FP8-aware training
    and QAD students run it (a reference point in pareto.md, not a step of the search)."""
    forced, heads = set(forced), set(heads) - set(forced)
    trials: list[Trial] = []

    def trial(step: str, action: str, kept: set[str]) -> tuple[float, float]:
        mean, lower, *quality = evaluate(kept)
        trials.append(Trial(step, action, len(kept), flops.fp8_share(kept), mean, lower,
                            predicted_speedup=predicted_speedup(flops, kept),
                            quality_change=quality[0] if quality else {}))
        log.info(f"  {step:13s} {action:48s} overlap@10 {mean:.4f} (>= {lower:.4f})  "
                 f"FP8 share {flops.fp8_share(kept):.1%}")
        return mean, lower

    free = [name for name in layers if name not in forced]
    everything = set(layers)
    loss = {name: 1.0 - trial("sensitivity", f"only {name} in FP8", everything - {name})[0]
            for name in free}
    kept = set(forced)
    score = trial("all", "every GEMM in FP8" + (" but --exclude" if forced else ""), kept)
    trials[-1].accepted = True
    if heads:
        trial("all but heads", "every GEMM in FP8 but the output heads", kept | heads)
    per_flop = sorted(free, key=lambda n: loss[n] / max(flops.per_layer.get(n, 0.0), 1.0),
                      reverse=True)
    for name in per_flop:
        if score[1] >= target:
            break
        kept.add(name)
        score = trial("greedy", f"keep {name} in bf16", kept)
        trials[-1].accepted = True
    for name in sorted(kept - forced, key=lambda n: -flops.per_layer.get(n, 0.0)):
        candidate = kept - {name}
        value = trial("give back", f"{name} back to FP8", candidate)
        if value[1] >= target:
            kept, score = candidate, value
            trials[-1].accepted = True
    return SearchResult(sorted(kept), score[0], score[1], flops.fp8_share(kept), loss, trials,
                        predicted_speedup(flops, kept))


def reached(result: SearchResult, chosen: dict) -> str:
    """'>= the target 0.95', or why not: against a QAD teacher even the student's all-bf16
    loop can fall short, and the search then keeps every GEMM it can in bf16."""
    target = chosen["target_overlap"]
    if result.overlap_lower_95 >= target:
        return f">= the target {target}"
    return (f"< the target {target}: not reached, every GEMM the search may choose stays "
            "bf16")


def trials_table(result: SearchResult, chosen: dict) -> str:
    """search.md: what was tried, and what was chosen."""
    from onerec_trt.tables import format_table

    rows = [[t.step, t.action, t.bf16_layers, f"{t.fp8_flop_share:.1%}", t.overlap_at_10,
             t.overlap_lower_95, "yes" if t.accepted else ""] for t in result.trials]
    return "\n".join([
        "# quantize --search",
        "",
        f"Chosen on {chosen['users']:,} {chosen['split']} users ({chosen['dataset']}): "
        f"calibration {chosen['calibration']}, {len(result.bf16_layers)} GEMM layer(s) in bf16, "
        f"FP8 share {result.fp8_flop_share:.1%} of {chosen['flop_basis']}, overlap@10 "
        f"{result.overlap_at_10:.4f} against {chosen.get('reference', 'bf16')}, one-sided 95% "
        f"lower bound {result.overlap_lower_95:.4f} {reached(result, chosen)}.",
        "",
        "bf16 layers: " + (", ".join(result.bf16_layers) or "none"),
        "",
        f"Speed-up over bf16, {LABEL}: {speedup_text(result.predicted_speedup)}. Every "
        "candidate's FP8 share, overlap, Recall/NDCG change and predicted speed-up: pareto.md "
        "(plot: pareto.png).",
        "",
        format_table(["step", "candidate", "bf16 layers", "FP8 FLOP share", "overlap@10",
                      "lower 95%", "kept"], rows),
        "",
    ])

"""The two judgements the report makes from the numbers: does the seed paper's distribution
claim hold for our three models, and which layers' FP8 error is too large (the exclusions)."""

from __future__ import annotations

import math

# The paper's claim, in the six summary statistics the issue names.
CLAIM_STATS = (("weights", "variance_max"), ("weights", "absmax_max"),
               ("weights", "kurtosis_median"), ("activations", "variance_max"),
               ("activations", "absmax_max"), ("activations", "kurtosis_median"))
# The paper's markers of a "wild" classic ranking model: weight variance ~1e7, absmax > 1000.
WILD_VARIANCE, WILD_ABSMAX = 1e3, 1e3
TAME_VARIANCE = 0.1  # the paper: generative recommender's (and the LLM's) weight variance < 0.1


def _log_distance(a: float, b: float) -> float:
    """|log10(a / b)|: how many orders of magnitude apart two positive statistics are."""
    if a <= 0 or b <= 0:
        return math.inf if a != b else 0.0
    return abs(math.log10(a / b))


def compare_models(summaries: dict[str, dict]) -> dict:
    """Per statistic: is the OneRec-style model nearer the LM or the traditional model
    (log10 ratio), plus the paper's absolute markers; ``holds`` only when both parts hold."""
    if not {"onerec", "traditional", "lm"} <= set(summaries):
        return {"holds": None, "reason": "needs all three models (onerec, traditional, lm)"}
    rows, nearer_lm = [], 0
    for group, stat in CLAIM_STATS:
        o, t, lm = (summaries[k][group][stat] for k in ("onerec", "traditional", "lm"))
        d_lm, d_t = _log_distance(o, lm), _log_distance(o, t)
        nearer = "lm" if d_lm < d_t else "traditional"
        nearer_lm += nearer == "lm"
        rows.append({"statistic": f"{group}.{stat}", "onerec": o, "lm": lm, "traditional": t,
                     "log10_distance_to_lm": d_lm, "log10_distance_to_traditional": d_t,
                     "nearer": nearer})
    trad = summaries["traditional"]
    trad_var = max(trad["weights"]["variance_max"], trad["embeddings"].get("variance_max", 0))
    trad_abs = max(trad["weights"]["absmax_max"], trad["embeddings"].get("absmax_max", 0))
    markers = {
        "onerec_weight_variance_below_0.1": summaries["onerec"]["weights"]["variance_max"]
        < TAME_VARIANCE,
        "lm_weight_variance_below_0.1": summaries["lm"]["weights"]["variance_max"]
        < TAME_VARIANCE,
        "traditional_weight_variance_below_0.1": trad["weights"]["variance_max"]
        < TAME_VARIANCE,
        "traditional_wild": trad_var > WILD_VARIANCE or trad_abs > WILD_ABSMAX,
        "traditional_weight_variance_max_incl_embeddings": trad_var,
        "traditional_weight_absmax_max_incl_embeddings": trad_abs,
    }
    closeness = nearer_lm > len(CLAIM_STATS) / 2
    holds = closeness and markers["traditional_wild"]
    fp8 = {k: {"per_tensor_sqnr_min_db": min(s["weights"].get("sqnr_per_tensor_min", math.inf),
                                             s["activations"].get("sqnr_per_tensor_min",
                                                                  math.inf)),
               "gemm_sqnr_min_db": s.get("gemm_sqnr_min_db")} for k, s in summaries.items()}
    return {"statistics": rows, "nearer_lm_count": nearer_lm, "of": len(CLAIM_STATS),
            "onerec_nearer_lm": closeness, "paper_markers": markers, "fp8_error": fp8,
            "holds": holds, "verdict": _verdict(holds, closeness, markers, nearer_lm)}


def _verdict(holds: bool, closeness: bool, markers: dict, nearer_lm: int) -> str:
    n = len(CLAIM_STATS)
    near = f"the OneRec-style model is nearer the language model on {nearer_lm} of {n} statistics"
    wild = ("the traditional model is wild as the paper describes" if markers["traditional_wild"]
            else "the traditional model is not wild (weight variance "
                 f"{markers['traditional_weight_variance_max_incl_embeddings']:.3g}, absmax "
                 f"{markers['traditional_weight_absmax_max_incl_embeddings']:.3g}; the paper: "
                 "~1e7 and > 1000)")
    if not markers["traditional_wild"] and markers["traditional_weight_variance_below_0.1"] \
            and markers["onerec_weight_variance_below_0.1"]:
        wild += "; by the paper's own marker (weight variance < 0.1) all three models are tame"
    if holds:
        return f"holds: {near}, and {wild}."
    if closeness:
        return f"does not hold as stated: {near}, but {wild}."
    return f"does not hold: {near} (not a majority), and {wild}."


def exclusions(layers: dict[str, dict], threshold_db: float) -> dict:
    """Layers whose per-tensor FP8 error (weight, input or GEMM output SQNR) is below the
    threshold, in the quantize stage's format ``{"exclude": [names]}`` plus reasons."""
    exclude, reasons = [], {}
    for name, rec in layers.items():
        found = []
        for what, value in (("weight", rec["weight"]["fp8"]["per_tensor"]["sqnr_db"]),
                            ("input", rec.get("activation", {}).get("fp8", {})
                             .get("per_tensor", {}).get("sqnr_db")),
                            ("GEMM output", rec.get("gemm_sqnr_db"))):
            if value is not None and value < threshold_db:
                found.append(f"{what} SQNR {value:.1f} dB")
        if found:
            exclude.append(name)
            reasons[name] = ", ".join(found) + f" < {threshold_db:g} dB (per-tensor FP8 E4M3)"
    return {"exclude": exclude, "threshold_db": threshold_db, "reasons": reasons,
            "metric": "per-tensor FP8 E4M3 SQNR of the weight, the input and the GEMM output "
                      "(the quantize stage's scheme), on real calibration data"}

"""``report.md``: the summary a person reads (every number is also in ``report.json``)."""

from __future__ import annotations

import math

from onerec_trt.tables import markdown_table

NAMES = {"onerec": "OneRec-style", "traditional": "traditional (DCN)", "lm": "language model"}
SUMMARY_ROWS = (("weights", "variance_max"), ("weights", "variance_median"),
                ("weights", "absmax_max"), ("weights", "kurtosis_median"),
                ("weights", "sqnr_per_tensor_min"), ("weights", "sqnr_per_channel_min"),
                ("activations", "variance_max"), ("activations", "variance_median"),
                ("activations", "absmax_max"), ("activations", "kurtosis_median"),
                ("activations", "beyond_6sigma_max"), ("activations", "channel_absmax_ratio_max"),
                ("activations", "sqnr_per_tensor_min"), ("activations", "sqnr_per_channel_min"),
                ("embeddings", "variance_max"), ("embeddings", "absmax_max"))


def _g(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _md_table(headers: list[str], rows: list[list]) -> str:
    return markdown_table(headers, [[_g(c) for c in row] for row in rows])


def _models_section(report: dict) -> list[str]:
    models = {k: v for k, v in report["models"].items() if "skipped" not in v}
    out = ["## 1. Distributions and FP8 error, three models side by side", ""]
    for key, m in report["models"].items():
        if "skipped" in m:
            out.append(f"- **{NAMES.get(key, key)}**: skipped ({m['skipped']})")
            continue
        data = m.get("activation_data", {})
        extra = ""
        if key == "traditional":
            tr = m["training"]
            extra = (f"; trained {tr['epochs']:.2f} epochs in {tr['seconds']:.0f} s, test AUC "
                     f"{tr['test_auc']:.3f}, log-loss {tr['test_logloss']:.3f}")
        out.append(f"- **{NAMES.get(key, key)}**: {m['description']}. Activations: "
                   f"{data.get('source', '?')}{extra}.")
    rows = [[f"{g}.{s}", *(models[k][g].get(s) for k in models)] for g, s in SUMMARY_ROWS]
    rows.append(["GEMM output SQNR min (dB)", *(models[k]["gemm_sqnr_min_db"] for k in models)])
    out += ["", _md_table(["statistic", *(NAMES.get(k, k) for k in models)], rows), "",
            "Over each model's GEMM (nn.Linear) layers: max/median across layers of the per-layer "
            "value. Kurtosis is Pearson's (Gaussian = 3); SQNR in dB for the FP8 E4M3 round trip "
            "(per-tensor and per-channel scales); embeddings are lookups, never FP8 GEMMs.", ""]
    return out


def _verdict_section(report: dict) -> list[str]:
    comp = report["comparison"]
    out = ["## 2. The seed paper's claim", ""]
    if comp.get("holds") is None:
        return out + [f"Not judged: {comp['reason']}.", ""]
    out += [f"**Verdict: the claim {comp['verdict']}**", "",
            "Claim: generative recommenders have LLM-like (tame) weight and activation "
            "distributions, classic ranking models wild ones (weight variance ~1e7, absmax > "
            "1000).", ""]
    rows = [[r["statistic"], r["onerec"], r["lm"], r["traditional"],
             r["log10_distance_to_lm"], r["log10_distance_to_traditional"], r["nearer"]]
            for r in comp["statistics"]]
    out += [_md_table(["statistic", "OneRec-style", "LM", "traditional", "|log10| to LM",
                       "|log10| to traditional", "nearer"], rows), ""]
    out += [f"- {k}: {_g(v)}" for k, v in comp["paper_markers"].items()] + [""]
    out += ["FP8 error (per-tensor E4M3, the quantize stage's scheme): "
            + "; ".join(f"{NAMES.get(k, k)}: weights/inputs >= {_g(v['per_tensor_sqnr_min_db'])} "
                        f"dB, GEMM outputs >= {_g(v['gemm_sqnr_min_db'])} dB"
                        for k, v in comp["fp8_error"].items()) + ".", ""]
    return out


def _layers_section(report: dict) -> list[str]:
    layers = report["models"]["onerec"]["layers"]
    rows = []
    for name, r in layers.items():
        w, a = r["weight"], r.get("activation")
        rows.append([name, w["variance"], w["absmax"], w["kurtosis"],
                     w["fp8"]["per_tensor"]["sqnr_db"], w["fp8"]["per_channel"]["sqnr_db"],
                     *((a["absmax"], a["variance"], a["kurtosis"], a["beyond_6sigma"],
                        a["channel_absmax_ratio"], a["fp8"]["per_tensor"]["sqnr_db"],
                        a["fp8"]["per_channel"]["sqnr_db"]) if a else ("-",) * 7),
                     r.get("gemm_sqnr_db"), r.get("rows_seen")])
    excl = report["exclusions"]
    out = ["## 3. The OneRec-style model, layer by layer", "",
           _md_table(["layer", "W var", "W absmax", "W kurt", "W SQNR pt", "W SQNR pc",
                      "X absmax", "X var", "X kurt", "X >6σ", "X ch max/med", "X SQNR pt",
                      "X SQNR pc", "GEMM SQNR", "rows"], rows), "",
           "W = weight, X = the layer's input on the calibration run; pt/pc = per-tensor/"
           "per-channel FP8 scale; GEMM SQNR = output error with both operands per-tensor FP8.",
           "", f"### FP8 exclusions (threshold {excl['threshold_db']:g} dB)", ""]
    if excl["exclude"]:
        out += [f"- `{n}`: {excl['reasons'][n]}" for n in excl["exclude"]]
    else:
        out.append("No layer is below the threshold: `exclusions.json` lists none.")
    return out + ["", "Pass it on: `onerec-trt quantize --exclusions exclusions.json ...`.", ""]


def _roofline_section(report: dict) -> list[str]:
    roof = report["roofline"]
    gpus = roof["gpus"]
    out = ["## 4. Is FP8 worth it? Roofline of one request", "",
           _md_table(["GPU", "BF16 TFLOPS", "FP8 TFLOPS", "TB/s", "source"],
                     [[k, g["bf16_tflops"], g["fp8_tflops"], g["memory_tbs"], g["source"]]
                      for k, g in gpus.items()]), ""]
    rows = []
    for key in (k for k in roof if k != "gpus"):
        sec = roof[key]
        shape = sec["shape"]
        for gpu in gpus:
            p = sec[gpu]
            rows.append([key, f"N={shape['users']} B={shape['beam']}", gpu, p["bf16_ms"],
                         p["fp8_ms"], p["predicted_speedup"], p["compute_bound_share_bf16"],
                         p["sweep"]["compute_bound_from_rows"]
                         or f"never up to {p['sweep']['max_rows']:,}"])
    out += [_md_table(["model", "shape", "GPU", "BF16 ms", "FP8 ms", "FP8 speed-up",
                       "compute-bound share (BF16)", "compute-bound from N*B"], rows), ""]
    first = next(iter(gpus))
    for key in (k for k in roof if k != "gpus"):
        out += _by_kind(key, roof[key], first)
    return out + [
        "Prediction, not measurement: time per op = max(FLOPs/peak, bytes/bandwidth) at the "
        "datasheet's dense peak, ops summed without overlap. 'compute-bound from N*B': the "
        "smallest N*B (powers of two) at which half the predicted BF16 time is in "
        "compute-bound ops. Per-op numbers and the sweeps are in report.json.", ""]


def _by_kind(key: str, sec: dict, gpu: str) -> list[str]:
    p = sec[gpu]
    kinds: dict[str, list[float]] = {}
    for op, t in zip(sec["ops"], p["ops"], strict=True):
        acc = kinds.setdefault(op["kind"], [0.0, 0.0, 0.0, 0.0])
        acc[0] += op["flops"]
        acc[1] += op["bytes_bf16"]
        acc[2] += t["bf16_us"]
        acc[3] += t.get("fp8_us") or 0.0
    rows = [[k, v[0] / 1e9, v[1] / 1e6, v[0] / v[1] if v[1] else None, v[2], v[3] or None]
            for k, v in kinds.items()]
    tot = sec["totals"]
    return [f"**{key}** on {gpu} ({sec['description']}; {tot['flops'] / 1e9:.4g} GFLOP, "
            f"{tot['bytes_bf16'] / 1e6:.4g} MB BF16, intensity {tot['intensity_bf16']:.3g} "
            "FLOP/byte):", "",
            _md_table(["op kind", "GFLOP", "MB (BF16)", "FLOP/byte", "BF16 µs", "FP8 µs"], rows),
            ""]


def render_markdown(report: dict) -> str:
    opts = report["options"]
    head = ["# FP8 analysis", "",
            f"Model: `{report['model']}`. Backend: {report['backend']}. Activations from "
            f"{opts['calib_users']} users, beam {opts['beam']}. Analysis time "
            f"{report['seconds']['total']:.0f} s (before the plots).", "",
            "Plots: `histograms.png` (|weights| and |activations| of the models, log scale), "
            "`fp8_sqnr.png` (per-layer FP8 SQNR), `roofline.png`.", ""]
    if report.get("untrained"):
        head += ["**This model is untrained** (`onerec-trt init`: random weights): its "
                 "statistics describe the training init, not a trained recommender.", ""]
    body = (_models_section(report) + _verdict_section(report) + _layers_section(report)
            + _roofline_section(report))
    return "\n".join(head + body) + "\n"


"""``quantize()``'s body: ModelOpt calibration of the generation loop, export, Q/DQ fix-ups."""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from onerec_trt.artifacts import (
    read_json,
    write_json,
    write_text,
)
from onerec_trt.errors import user_error
from onerec_trt.export import ExportReport
from onerec_trt.export.passes import render_bf16_on_cpu
from onerec_trt.export.stage import check_graph, example_history, skeleton, write_graph
from onerec_trt.fp8_format import E4M3_MAX
from onerec_trt.layout import (
    CALIBRATION_JSON,
    FP8_CPU_GRAPH,
    FP8_GRAPH,
    QUANTIZE_REPORT,
    SEARCH_MD,
)
from onerec_trt.model.checkpoint import load_model, model_hash
from onerec_trt.model.generate import Generator, users_per_call
from onerec_trt.progress import progress_bar
from onerec_trt.provenance import check_same_model
from onerec_trt.quantize import QuantizeOptions, QuantizeReport
from onerec_trt.quantize.choose import fixed_policy, run_search, user_exclusions
from onerec_trt.quantize.flops import RequestFlops, counted_flops, roofline_flops
from onerec_trt.quantize.pareto import write_pareto
from onerec_trt.quantize.policy import (
    CALIB_METHODS,
    POLICY_JSON,
    WEIGHT_SCALES,
    Policy,
    model_policy,
    read_policy,
    write_policy,
)
from onerec_trt.quantize.ptq import (
    calibrate,
    check_state,
    linear_layers,
    load_amax,
    per_tensor_for_export,
    quantizer_amax,
    set_bf16_layers,
)
from onerec_trt.quantize.qad import STUDENT, distill
from onerec_trt.quantize.qdq import set_channel_scales, standardize_trt_qdq, swap_fp8_transpose
from onerec_trt.quantize.search import SearchResult, trials_table
from onerec_trt.quantize.speedup import speedup_basis, speedup_record, speedup_text
from onerec_trt.reports import read_stage
from onerec_trt.stage_runner import StagedRun, check_stage_out, run_stage

log = logging.getLogger(__name__)


def _validate(opts: QuantizeOptions) -> None:
    if opts.calib_method is not None and opts.calib_method not in CALIB_METHODS:
        raise user_error(f"unknown --calib-method {opts.calib_method!r}",
                         f"ModelOpt's FP8 calibration supports: {', '.join(CALIB_METHODS)}")
    if opts.weight_scales is not None and opts.weight_scales not in WEIGHT_SCALES:
        raise user_error(f"unknown --weight-scales {opts.weight_scales!r}",
                         f"one of: {', '.join(WEIGHT_SCALES)}")
    if opts.search and (opts.policy or opts.calibration):
        raise user_error("--search chooses the policy and calibrates; it contradicts "
                         f"--{'policy' if opts.policy else 'calibration'}",
                         "pass --search alone, or reproduce a search with --policy "
                         "quantize_report.json")
    if opts.search and not opts.default_exclusions:
        raise user_error("--search and --quantize-all contradict each other",
                         "the search decides which layers stay bf16")
    if not 0.0 < opts.target_overlap <= 1.0 or opts.search_users <= 0:
        raise user_error("--target-overlap must lie in (0, 1] and --search-users be positive")
    if opts.calibration and opts.histories:
        raise user_error("--calibration and --histories contradict each other",
                         "a calibration file skips calibration; pass one or the other")
    if opts.calib_users <= 0 or opts.calib_batch <= 0:
        raise user_error("--calib-users and --calib-batch must be positive")
    for pattern in opts.exclude:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise user_error(f"--exclude {pattern!r} is not a valid regex: {exc}") from None
    if opts.qad < 0:
        raise user_error(f"--qad takes minutes of distillation (0 = off), got {opts.qad:g}")
    if opts.qad and opts.calibration:
        raise user_error("--qad and --calibration contradict each other",
                         "a calibration file holds the teacher's scales, not the student's")
    if opts.policy:
        read_policy(opts.policy)  # a missing or malformed file, before any work


def read_exclusions(path: str) -> list[str]:
    """The layer names of an ``exclusions.json`` (``{"exclude": [names]}``)."""
    data = read_json(path, "exclusions file")
    names = data.get("exclude") if isinstance(data, dict) else None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise user_error(f"{path}: expected {{\"exclude\": [layer names]}}",
                         "pass the exclusions.json 'onerec-trt analyze' wrote")
    return names


FIX_FILE = "recalibrate (omit --calibration) or correct the file"
# amax the graph's float32 scales can hold: scale = amax / 448 a normal float32, amax finite
AMAX_RANGE = (float(np.finfo(np.float32).tiny) * E4M3_MAX, float(np.finfo(np.float32).max))


def checked_amax(amax: object, where: str,
                 fix: str = FIX_FILE) -> dict[str, float | list[float]]:
    """Quantizer name -> amax, each a finite positive number whose scale a float32 holds (or a
    non-empty list of them: a per-channel weight quantizer): a NaN, negative, zero, text, tiny
    (1e-300) or huge (1e300) amax would give the graph a NaN, negative, zero or infinite
    scale."""
    if not isinstance(amax, dict):
        raise user_error(f"{where} has no 'amax' object (quantizer name -> amax)",
                         "pass a calibration.json written by 'onerec-trt quantize'")

    def good(value: object) -> bool:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and AMAX_RANGE[0] <= value <= AMAX_RANGE[1]

    for name, value in amax.items():
        values = value if isinstance(value, list) and value else [value]
        bad = next((v for v in values if not good(v)), None)
        if bad is not None:
            raise user_error(f"{where}: the amax of {name} is {bad!r}; every amax must be a "
                             f"finite positive number from {AMAX_RANGE[0]:.3g} to "
                             f"{AMAX_RANGE[1]:.3g} (scale = amax / 448, a float32)", fix)
    return {name: [float(v) for v in value] if isinstance(value, list) else float(value)
            for name, value in amax.items()}


def run_quantize(opts: QuantizeOptions) -> QuantizeReport:
    check_stage_out(opts)  # --out first, before any other check or work
    _validate(opts)
    report = run_stage("quantize", opts, lambda run: _quantize(opts, run),
                       report=QUANTIZE_REPORT)
    basis = "GEMM" if report.flop_basis.startswith("nn.Linear") else "request"
    log.info(f"quantized {len(report.quantized_gemms)} GEMM layers to FP8 "
             f"({len(report.excluded_gemms)} in bf16, FP8 share {report.fp8_flop_share:.1%} of "
             f"{basis} FLOPs; predicted speed-up over bf16 "
             f"{speedup_text(report.predicted_speedup['over_bf16'])}) -> {opts.out} in "
             f"{report.seconds_total:.1f}s")
    return report


def _quantize(opts: QuantizeOptions, run: StagedRun) -> QuantizeReport:
    """Calibrate (or search, or read a calibration file), then write the FP8 graphs and
    their records into the staged folder ``run.folder``."""
    export_meta = read_stage(opts.onnx, ExportReport, flag="--onnx")
    exclusion_names = read_exclusions(opts.exclusions) if opts.exclusions else []
    check_same_model(export_meta.model_sha256, model_hash(opts.model), opts.onnx,
                     "export this model first (onerec-trt export --model ...)")
    teacher_sha, qad, onnx, teacher_path = model_hash(opts.model), None, opts.onnx, opts.model
    if opts.qad:  # PTQ (and --search) below run on the distilled student's graphs
        qad = distill(opts, run.folder, export_meta.beam, export_meta.topk, export_meta.step)
        opts = replace(opts, model=str(qad.student), onnx=str(qad.onnx))
        export_meta = read_stage(opts.onnx, ExportReport, flag="--onnx")
    bundle = load_model(opts.model, torch.bfloat16)  # converted while read: never fp32 whole
    beam, topk = export_meta.beam, export_meta.topk
    forced = user_exclusions(opts, bundle.model, exclusion_names)
    unknown = sorted(set(exclusion_names) - set(linear_layers(bundle.model)))
    histories, source = None, ""
    if opts.calibration is None:
        histories, source = bundle.calibration_histories(
            opts.calib_users, opts.seed, opts.histories, opts.dataset, opts.data, opts.columns)
    scales = _weight_scales(opts, bundle.path)
    calibrated = partial(_calibrated, bundle, beam, topk, export_meta.step, histories,
                         opts.calib_batch, opts.search, scales)
    reuse = partial(_reuse, bundle, beam, topk, export_meta.step, scales)
    flops = _flops(bundle, beam, topk, export_meta.step)
    teacher = load_model(teacher_path, torch.bfloat16).model if qad and opts.search else None
    policy, reasons, graph, search = _choose(opts, bundle, calibrated, reuse, flops, forced,
                                             teacher)
    model = graph.model
    if opts.calibration is None:
        amax = checked_amax(quantizer_amax(model), f"calibration on {source}",
                            "the model's weights or the histories give that layer no finite, "
                            "non-zero input: check the model folder, or --exclude the layer")
    excluded = {**reasons, **forced}
    set_bf16_layers(model, excluded)
    if opts.calibration is not None:
        amax = _load_calibration(opts.calibration, model)
        source = f"calibration file {opts.calibration}"
    check_state(model)
    calib_seconds = run.seconds()
    policy.bf16_layers = sorted(excluded)
    policy.weight_scales = scales
    tmp = run.folder
    with per_tensor_for_export(graph) as channel_scales:
        fp8 = standardize_trt_qdq(skeleton(graph, example_history(bundle.config.max_history),
                                           tmp))
    fp8, _ = set_channel_scales(fp8, channel_scales)
    check_graph(fp8, FP8_GRAPH)
    cpu, swaps = swap_fp8_transpose(render_bf16_on_cpu(fp8))
    check_graph(cpu, FP8_CPU_GRAPH)
    weights = graph.state_dict()
    sizes = {name: write_graph(g, weights, tmp / name, compact_fp8=True)
             for name, g in ((FP8_GRAPH, fp8), (FP8_CPU_GRAPH, cpu))}
    calib = {"method": policy.calibration, "format": "fp8_e4m3", "weight_scales": scales,
             "source": source, "amax": amax, "scale": {k: _scale(v) for k, v in amax.items()}}
    write_json(tmp / CALIBRATION_JSON, calib)
    write_policy(tmp / POLICY_JSON, policy)
    report = _report(opts, model, excluded, unknown, tmp / FP8_GRAPH, histories, beam,
                     swaps, source, policy.calibration, calib_seconds, run.seconds(), scales)
    report.bytes = sizes
    report.policy = policy.to_json()
    report.fp8_flop_share = flops.fp8_share(excluded)
    report.flop_basis = flops.basis
    report.predicted_speedup = speedup_record(flops, excluded)
    if search is not None:
        report.search = search.to_json()
        write_text(tmp / SEARCH_MD, trials_table(search, policy.chosen))
        report.pareto = write_pareto(tmp, search, policy.chosen, speedup_basis(flops))
    run.inputs.update(model=model_hash(opts.model) or "", onnx=onnx)  # --onnx, as given
    if qad is not None:
        report.qad = {**qad.record, "student": str(run.out / STUDENT),
                      "teacher_sha256": teacher_sha, "student_sha256": model_hash(qad.student)}
        run.inputs.update(teacher=teacher_sha or "")
    return report


def _choose(opts: QuantizeOptions, bundle, calibrated, reuse, flops: RequestFlops,
            forced: dict, teacher=None
            ) -> tuple[Policy, dict[str, str], Generator, SearchResult | None]:
    """The policy, each bf16 layer's reason, the generation loop with its quantizers (by
    ``calibrated(method)``, or ``reuse()`` for a calibration file) and the search's trials
    (None without ``--search``; measured against ``teacher``'s bf16 when given)."""
    if opts.search:
        policy, search, graph = run_search(opts, bundle, calibrated, flops, forced, teacher)
        return policy, policy.reasons("found by --search"), graph, search
    policy, reasons = fixed_policy(opts, bundle, bundle.model)
    policy.calibration = opts.calib_method or policy.calibration
    if opts.calibration is None:
        return policy, reasons, calibrated(policy.calibration), None
    return policy, reasons, reuse(), None


def _weight_scales(opts: QuantizeOptions, model_folder: Path) -> str:
    """--weight-scales, else the policy's (--policy, or the model folder's), else per-tensor."""
    if opts.weight_scales is not None:
        return opts.weight_scales
    own = opts.default_exclusions and not opts.search
    path = opts.policy or (model_policy(model_folder) if own else None)
    return read_policy(path).weight_scales if path else "per-tensor"


def _scale(amax: float | list[float]) -> float | list[float]:
    return [v / E4M3_MAX for v in amax] if isinstance(amax, list) else amax / E4M3_MAX


def _calibrated(bundle, beam: int, topk: int, step: str, histories, calib_batch: int,
                fresh: bool, weight_scales: str, method: str) -> Generator:
    """The model with every GEMM's FP8 quantizers calibrated by ``method`` on the calibration
    histories (the real generation loop, beams included); ``fresh``: on a copy, so a search
    can calibrate again with another method (one run calibrates the model itself: a copy of a
    billion-parameter model would double its memory)."""
    model = copy.deepcopy(bundle.model) if fresh else bundle.model
    graph = Generator(model, beam, topk, step).eval()
    size = users_per_call(beam, bundle.config.codebook_sizes, calib_batch)
    if size < calib_batch:
        log.info(f"note: calibrating {size} users per batch (beam x codebook tensors stay "
                 "under 256 MiB)")
    batches = [torch.from_numpy(histories[i:i + size]) for i in range(0, len(histories), size)]

    def run() -> None:
        with torch.no_grad():
            for batch in progress_bar(batches, desc=f"calibrate ({method})", unit="batch",
                                      leave=False):
                graph(batch)

    calibrate(model, run, method, weight_scales)
    return graph


def _reuse(bundle, beam: int, topk: int, step: str, weight_scales: str) -> Generator:
    """Quantizers inserted without calibration: ``--calibration FILE`` sets their amax."""
    graph = Generator(bundle.model, beam, topk, step).eval()
    example = torch.ones(2, bundle.config.max_history, dtype=torch.long)
    calibrate(bundle.model, lambda: graph(example), "max", weight_scales)
    return graph


def _load_calibration(path: str, model) -> dict[str, float]:
    saved = read_json(path, "calibration file")
    amax = checked_amax(saved.get("amax") if isinstance(saved, dict) else None,
                        f"calibration file {path}")
    missing = load_amax(model, amax)
    if missing:
        raise user_error(f"{path} has no amax for {len(missing)} quantizer(s), "
                         f"e.g. {missing[0]}", "it was made for another model or exclusions")
    return amax


def _flops(bundle, beam: int, topk: int, step: str) -> RequestFlops:
    """FLOPs per GEMM of a request: the analysis roofline for this project's models; counted
    on one user's request for imported ones (the share does not depend on the users)."""
    if not hasattr(bundle.config, "family"):
        return roofline_flops(bundle.config, 64, beam)
    history = torch.ones(1, bundle.config.max_history, dtype=torch.long)
    return counted_flops(Generator(bundle.model, beam, topk, step).eval(), history)


def _report(opts, model, excluded, unknown, fp8_path, histories, beam, swaps, source, method,
            calib_s, total_s, weight_scales: str) -> QuantizeReport:
    import onnx

    layers = linear_layers(model)
    fp8 = onnx.load(str(fp8_path), load_external_data=False).graph
    fp8_weights = {i.name for i in fp8.initializer if i.data_type == onnx.TensorProto.FLOAT8E4M3FN}
    q_nodes = sum(n.op_type == "QuantizeLinear" for n in fp8.node)
    dq_weights = sum(n.op_type == "DequantizeLinear" and n.input[0] in fp8_weights
                     for n in fp8.node)
    return QuantizeReport(
        path="modelopt.torch.quantization (mtq.quantize, FP8_DEFAULT_CFG on every nn.Linear) "
             "+ ONNX export",
        format=f"FP8 E4M3, {weight_scales} scales for weights (per-channel: one per output "
               "feature, axis 0 of nn.Linear's weight), per-tensor for activations; GEMM weights "
               "stored in FP8 (FLOAT8E4M3FN initializers read by DequantizeLinear)"
               if weight_scales == "per-channel" else
               "FP8 E4M3, per-tensor scales for weights and activations; GEMM weights stored in "
               "FP8 (FLOAT8E4M3FN initializers read by DequantizeLinear)",
        calibration={
            "method": method, "source": source,
            "users": None if histories is None else int(len(histories)),
            "batch_shape": None if histories is None else [opts.calib_batch, histories.shape[1]],
            "decoder_rows_per_batch": opts.calib_batch * beam,
            "split": "train (training part of each user; never validation or test)",
        },
        quantized_gemms=[name for name in layers if name not in excluded],
        excluded_gemms=excluded,
        unknown_exclusions=unknown,
        not_quantized_by_design={
            "embeddings": "item, position and code embeddings are lookups, not GEMMs",
            "attention_matmuls": "Q.K^T and P.V stay bf16 (ModelOpt's FP8 default quantizes "
                                 "linear layers only)",
            "beam_search": "log-softmax, score accumulation, trie masks and TopK stay fp32",
        },
        graph={"quantize_linear_nodes": int(q_nodes), "fp8_weight_initializers": int(dq_weights),
               "cpu_transpose_swaps": swaps},
        seconds_calibration=calib_s,
        seconds_total=total_s,
    )

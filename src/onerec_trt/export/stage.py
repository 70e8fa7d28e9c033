"""``export()``'s body: trace the generation loop into ONNX, check and render the graphs."""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict
from pathlib import Path

import onnx
import torch

from onerec_trt.artifacts import staged_folder, write_manifest
from onerec_trt.errors import user_error
from onerec_trt.export import (
    INPUTS,
    OPSET,
    OUTPUTS,
    TOPK_LIMIT,
    ExportOptions,
    ExportReport,
)
from onerec_trt.export.passes import render_bf16_on_cpu, score_path_dtypes
from onerec_trt.layout import BF16_GRAPH, CPU_GRAPH, EXPORT_JSON, FP32_GRAPH
from onerec_trt.model.checkpoint import load_model, model_hash, resolve_model_path
from onerec_trt.model.generate import Generator


def export_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path) -> onnx.ModelProto:
    """torch -> ONNX with the legacy (TorchScript) exporter: fast, and it keeps ModelOpt's
    quantizer nodes; the dynamo exporter does not handle them (FACTS)."""
    axes = {name: {0: "N"} for name in (*INPUTS, *OUTPUTS)}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about Python control flow and asserts
        torch.onnx.export(module, (example,), str(path), input_names=INPUTS,
                          output_names=OUTPUTS, dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False, do_constant_folding=True)
    return onnx.load(str(path))


def check_graph(model: onnx.ModelProto, name: str) -> None:
    """onnx.checker plus strict shape inference; the score path must be fp32 end to end."""
    onnx.checker.check_model(model, full_check=True)
    not_fp32 = {k: v for k, v in score_path_dtypes(model).items() if v != "FLOAT"}
    if not_fp32:
        shown = ", ".join(f"{k} ({v})" for k, v in list(not_fp32.items())[:5])
        raise RuntimeError(f"{name}: {len(not_fp32)} beam-score tensors not in fp32: {shown}")


def save_onnx(model: onnx.ModelProto, path: Path) -> None:
    onnx.save(model, str(path))


def run_export(opts: ExportOptions, log=print) -> ExportReport:
    if not 1 <= opts.topk <= opts.beam:
        raise user_error(f"--topk {opts.topk} must be between 1 and --beam {opts.beam}")
    if opts.beam > TOPK_LIMIT:
        raise user_error(f"--beam {opts.beam} is above TensorRT's TopK limit of {TOPK_LIMIT}")
    t0 = time.perf_counter()
    bundle = load_model(opts.model)
    example = torch.zeros(4, bundle.config.max_history, dtype=torch.long)
    example[:, -3:] = torch.arange(1, 4)
    with staged_folder(opts.out, force=opts.force) as tmp:
        fp32 = export_onnx(Generator(bundle.model, opts.beam, opts.topk, opts.step).eval(), example,
                           tmp / FP32_GRAPH)
        check_graph(fp32, FP32_GRAPH)
        graph = Generator(bundle.model.to(torch.bfloat16), opts.beam, opts.topk, opts.step).eval()
        bf16 = export_onnx(graph, example, tmp / BF16_GRAPH)
        check_graph(bf16, BF16_GRAPH)
        cpu = render_bf16_on_cpu(bf16)
        check_graph(cpu, CPU_GRAPH)
        save_onnx(cpu, tmp / CPU_GRAPH)
        cfg = bundle.config
        report = ExportReport(
            options=asdict(opts), model=str(resolve_model_path(opts.model)),
            model_sha256=model_hash(opts.model), history_length=cfg.max_history,
            levels=cfg.levels, codebook_sizes=cfg.codebook_sizes, num_items=cfg.num_items,
            opset=OPSET, inputs={INPUTS[0]: ["N", cfg.max_history, "int64"]},
            outputs=dict(zip(OUTPUTS, (["N", opts.topk, "int64"], ["N", opts.topk, "float32"],
                                       ["N", opts.topk, cfg.levels, "int64"]), strict=True)),
            nodes={BF16_GRAPH: len(bf16.graph.node), CPU_GRAPH: len(cpu.graph.node),
                   FP32_GRAPH: len(fp32.graph.node)})
        report.seconds = time.perf_counter() - t0
        report.save(tmp / EXPORT_JSON)
        write_manifest(tmp, "export", asdict(opts), inputs={"model": report.model_sha256 or ""})
    log(f"exported {opts.out}: {BF16_GRAPH} ({report.nodes[BF16_GRAPH]} nodes), {CPU_GRAPH} "
        f"({report.nodes[CPU_GRAPH]} nodes) in {report.seconds:.1f}s")
    return report

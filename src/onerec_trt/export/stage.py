"""``export()``'s body: trace the generation loop into ONNX skeletons, check and render them,
then write each graph with its weights (``weights.py``: inline, or external past 1.5 GiB)."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import torch

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
from onerec_trt.export.weights import attach_weights, export_skeleton
from onerec_trt.layout import BF16_GRAPH, CPU_GRAPH, EXPORT_JSON, FP32_GRAPH
from onerec_trt.model.checkpoint import load_model, model_hash, resolve_model_path
from onerec_trt.model.generate import Generator
from onerec_trt.stage_runner import StagedRun, check_stage_out, run_stage

log = logging.getLogger(__name__)


def example_history(length: int) -> torch.Tensor:
    """What the exporter traces with: 2 users (the batch axis stays dynamic), 3 items each."""
    example = torch.zeros(2, length, dtype=torch.long)
    example[:, -3:] = torch.arange(1, 4)
    return example


def skeleton(module: torch.nn.Module, example: torch.Tensor, folder: Path) -> onnx.ModelProto:
    return export_skeleton(module, example, folder / ".skeleton.onnx", INPUTS, OUTPUTS, OPSET)


def check_graph(model: onnx.ModelProto, name: str) -> None:
    """onnx.checker plus strict shape inference (on a skeleton: weights are typed inputs); the
    score path must be fp32 end to end."""
    onnx.checker.check_model(model, full_check=True)
    not_fp32 = {k: v for k, v in score_path_dtypes(model).items() if v != "FLOAT"}
    if not_fp32:
        shown = ", ".join(f"{k} ({v})" for k, v in list(not_fp32.items())[:5])
        raise RuntimeError(f"{name}: {len(not_fp32)} beam-score tensors not in fp32: {shown}")


def write_graph(model: onnx.ModelProto, weights: dict, path: Path,
                compact_fp8: bool = False) -> int:
    """The graph with its weights at ``path`` (checked there, on the file); returns bytes."""
    size = attach_weights(model, weights, path, compact_fp8=compact_fp8)
    onnx.checker.check_model(str(path), full_check=True)
    return size


def run_export(opts: ExportOptions) -> ExportReport:
    check_stage_out(opts)  # --out first, before any other check or work
    if not 1 <= opts.topk <= opts.beam:
        raise user_error(f"--topk {opts.topk} must be between 1 and --beam {opts.beam}")
    if opts.beam > TOPK_LIMIT:
        raise user_error(f"--beam {opts.beam} is above TensorRT's TopK limit of {TOPK_LIMIT}")
    report = run_stage("export", opts, lambda run: _export(opts, run), report=EXPORT_JSON)
    log.info(f"exported {opts.out}: {BF16_GRAPH} ({report.nodes[BF16_GRAPH]} nodes), {CPU_GRAPH} "
             f"({report.nodes[CPU_GRAPH]} nodes), {sum(report.bytes.values()) / 2**20:.1f} MiB "
             f"in {report.seconds:.1f}s")
    return report


def _export(opts: ExportOptions, run: StagedRun) -> ExportReport:
    """The graphs, written into the staged folder ``run.folder``."""
    tmp = run.folder
    bundle = load_model(opts.model)
    cfg = bundle.config
    widest = max(cfg.codebook_sizes)
    if opts.beam * widest >= 2**31:
        raise user_error(f"--beam {opts.beam} x codebook {widest} candidates do not fit the "
                         "int32 indices TensorRT uses", "lower --beam")
    example = example_history(cfg.max_history)
    sizes, nodes = {}, {}
    generator = Generator(bundle.model, opts.beam, opts.topk, opts.step).eval()
    fp32 = skeleton(generator, example, tmp)
    check_graph(fp32, FP32_GRAPH)
    sizes[FP32_GRAPH] = write_graph(fp32, generator.state_dict(), tmp / FP32_GRAPH)
    del generator
    bundle.model.to(torch.bfloat16)  # in place: the fp32 weights are not kept twice
    generator = Generator(bundle.model, opts.beam, opts.topk, opts.step).eval()
    bf16 = skeleton(generator, example, tmp)
    check_graph(bf16, BF16_GRAPH)
    cpu = render_bf16_on_cpu(bf16)
    check_graph(cpu, CPU_GRAPH)
    weights = generator.state_dict()
    for name, graph in ((BF16_GRAPH, bf16), (CPU_GRAPH, cpu)):
        sizes[name] = write_graph(graph, weights, tmp / name)
        nodes[name] = len(graph.graph.node)
    nodes[FP32_GRAPH] = len(fp32.graph.node)
    report = ExportReport(
        options=run.options, model=str(resolve_model_path(opts.model)),
        model_sha256=model_hash(opts.model), history_length=cfg.max_history,
        levels=cfg.levels, codebook_sizes=cfg.codebook_sizes, num_items=cfg.num_items,
        opset=OPSET, inputs={INPUTS[0]: ["N", cfg.max_history, "int64"]},
        outputs=dict(zip(OUTPUTS, (["N", opts.topk, "int64"], ["N", opts.topk, "float32"],
                                   ["N", opts.topk, cfg.levels, "int64"]), strict=True)),
        nodes=nodes, bytes=sizes)
    report.seconds = run.seconds()
    run.inputs["model"] = report.model_sha256 or ""
    return report

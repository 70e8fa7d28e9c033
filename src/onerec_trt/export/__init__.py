"""The export stage: the whole request (context, L decode steps, beam search) as one ONNX graph.

Writes ``reference.bf16.onnx`` (bf16 weights and activations, fp32 beam logic: what a TensorRT
BF16 engine compiles), ``reference.cpu.onnx`` (the same numerics as fp32 compute with bf16
rounding casts, which ONNX Runtime's CPU provider runs), ``reference.fp32.onnx`` (the model in
fp32: the graph's meaning, checked against the torch reference exactly), plus ``export.json``.
With ``plugins`` it also writes the plugin-bearing graphs (``onerec_trt.plugins``).

Inputs: ``history`` int64 [N, S], the model's item ids, left-padded with 0; N is dynamic, S is
fixed to the model's ``max_history`` (shorter histories are padded, longer ones keep their last
S items). Outputs: ``items`` int64 [N, K] (-1 where fewer than K items exist), ``scores``
float32 [N, K], ``codes`` int64 [N, K, L].
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx
import torch

from onerec_trt.artifacts import staged_folder, write_json, write_manifest
from onerec_trt.errors import user_error
from onerec_trt.export.passes import render_bf16_on_cpu, score_path_dtypes
from onerec_trt.model.folder import load_model, model_hash, resolve_model_path
from onerec_trt.model.generate import Generator

__all__ = ["export", "ExportOptions", "BF16_GRAPH", "CPU_GRAPH", "FP32_GRAPH", "INPUTS",
           "OUTPUTS"]

BF16_GRAPH, CPU_GRAPH, EXPORT_JSON = "reference.bf16.onnx", "reference.cpu.onnx", "export.json"
FP32_GRAPH = "reference.fp32.onnx"
INPUTS, OUTPUTS = ["history"], ["items", "scores", "codes"]
OPSET = 19


@dataclass
class ExportOptions:
    model: str = "default"
    out: str = "runs/default/onnx"
    beam: int = 20
    topk: int = 10
    step: str = "csr"  # the beam step in the graph (model.generate.STEPS): csr or dense
    plugins: bool = False  # also write the plugin-bearing graphs
    force: bool = False


def export_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path) -> onnx.ModelProto:
    """torch -> ONNX with the legacy (TorchScript) exporter: fast, and it keeps ModelOpt's
    quantizer nodes; the dynamo exporter does not handle them (FACTS)."""
    axes = {"history": {0: "N"}, "items": {0: "N"}, "scores": {0: "N"}, "codes": {0: "N"}}
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


def export(opts: ExportOptions, log=print) -> dict:
    if not 1 <= opts.topk <= opts.beam:
        raise user_error(f"--topk {opts.topk} must be between 1 and --beam {opts.beam}")
    if opts.beam > 3840:
        raise user_error(f"--beam {opts.beam} is above TensorRT's TopK limit of 3840")
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
        meta = {
            "options": asdict(opts),
            "model": str(resolve_model_path(opts.model)),
            "model_sha256": model_hash(opts.model),
            "history_length": bundle.config.max_history,
            "levels": bundle.config.levels,
            "codebook_sizes": bundle.config.codebook_sizes,
            "num_items": bundle.config.num_items,
            "opset": OPSET,
            "inputs": {"history": ["N", bundle.config.max_history, "int64"]},
            "outputs": {"items": ["N", opts.topk, "int64"], "scores": ["N", opts.topk, "float32"],
                        "codes": ["N", opts.topk, bundle.config.levels, "int64"]},
            "nodes": {BF16_GRAPH: len(bf16.graph.node), CPU_GRAPH: len(cpu.graph.node),
                      FP32_GRAPH: len(fp32.graph.node)},
        }
        if opts.plugins:
            from onerec_trt.plugins.stage import PluginSwapOptions, swap_folder

            meta["plugins"] = swap_folder(tmp, PluginSwapOptions(check_users=32), log=log,
                                          update_manifest=False)
        meta["seconds"] = time.perf_counter() - t0
        write_json(tmp / EXPORT_JSON, meta)
        write_manifest(tmp, "export", asdict(opts), inputs={"model": meta["model_sha256"] or ""})
    log(f"exported {opts.out}: {BF16_GRAPH} ({meta['nodes'][BF16_GRAPH]} nodes), {CPU_GRAPH} "
        f"({meta['nodes'][CPU_GRAPH]} nodes) in {meta['seconds']:.1f}s")
    return meta

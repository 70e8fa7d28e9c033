"""Ahead-of-time compilation of the plugin kernels to PTX (for TensorRT's ``aot_impl``).

Needs only triton: ``triton.compile`` with an explicit target runs without a GPU, so the PTX a
TensorRT engine would embed can be produced and assembled (``ptxas``) on any machine.

TensorRT's AOT launcher passes exactly (inputs, int32 extra args, outputs). Triton >= 3.3 adds
hidden trailing pointer parameters (global and profile scratch); the kernels need no scratch
(checked), so the unused hidden parameters are removed from the PTX entry's signature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from onerec_trt.plugins.spec import CODES_TO_ITEM, TRIE_BEAM_EXPAND, TRIE_BEAM_SELECT

I64 = "*i64"
TRIE = [("indptr", I64), ("child_code", I64), ("offsets", I64)]
# The kernels' parameters in TensorRT's AOT order: inputs, int32 scalars, outputs.
PARAMS = {
    TRIE_BEAM_EXPAND.name: [("logits", "*{logits}"), ("scores", "*fp32"), ("node", I64), *TRIE,
                            ("B", "i32"), ("V", "i32"), ("step", "i32"), ("levels1", "i32"),
                            ("cand", I64)],
    TRIE_BEAM_SELECT.name: [("cand", I64), ("node", I64), *TRIE, ("B", "i32"), ("V", "i32"),
                            ("step", "i32"), ("levels1", "i32"), ("K", "i32"),
                            ("new_scores", "*fp32"), ("parent", I64), ("code", I64),
                            ("next_node", I64)],
    CODES_TO_ITEM.name: [("codes", I64), *TRIE, ("leaf_item", I64), ("M", "i32"), ("L", "i32"),
                         ("items", I64)],
}
CODES_BLOCK = 128
WARPS_KEY = {TRIE_BEAM_EXPAND.name: "expand", TRIE_BEAM_SELECT.name: "select",
             CODES_TO_ITEM.name: "codes"}
PTX_VERSION = 80  # PTX ISA 8.0: CUDA 12.0 drivers and newer (TensorRT 10 needs CUDA 12)
LOGITS_TYPES = {"float32": "fp32", "bfloat16": "bf16"}


@dataclass
class CompiledKernel:
    plugin: str
    name: str  # the PTX entry
    ptx: str
    num_warps: int
    shared: int  # dynamic shared memory bytes per block
    constants: dict
    hidden_params_removed: int


def kernel_and_constants(plugin: str, beam_out: int = 1, vocab: int = 1, beams: int = 1):
    """(the @triton.jit function, its compile-time constants) for one plugin configuration."""
    from onerec_trt.plugins import kernels

    if plugin == TRIE_BEAM_EXPAND.name:
        return kernels._expand_kernel, kernels.expand_meta(beam_out, vocab)
    if plugin == TRIE_BEAM_SELECT.name:
        return kernels._select_kernel, kernels.select_meta(beams, beam_out, vocab)
    if plugin == CODES_TO_ITEM.name:
        return (kernels._codes_to_item_kernel,
                {"BLOCK": CODES_BLOCK, "STEPS": kernels.CODE_SEARCH_STEPS})
    raise ValueError(f"unknown plugin {plugin!r}")


def compile_kernel(plugin: str, *, logits_dtype: str = "float32", beam_out: int = 1,
                   vocab: int = 1, beams: int = 1, arch: int = 90,
                   ptx_version: int | None = PTX_VERSION) -> CompiledKernel:
    """PTX of a plugin's kernel for compute capability ``arch`` (e.g. 90 for H100/H200).

    ``ptx_version`` (e.g. 80 = PTX ISA 8.0): the driver that loads the engine JIT-compiles the
    PTX and must know that ISA; None takes the newest the installed ptxas knows."""
    import triton
    from triton.backends.compiler import GPUTarget

    from onerec_trt.plugins.kernels import NUM_WARPS

    fn, constants = kernel_and_constants(plugin, beam_out, vocab, beams)
    params = [(name, kind.format(logits=LOGITS_TYPES[logits_dtype])) for name, kind
              in PARAMS[plugin]]
    signature = dict(params) | {name: "constexpr" for name in constants}
    src = triton.compiler.ASTSource(fn=fn, signature=signature, constexprs=constants)
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": NUM_WARPS[WARPS_KEY[plugin]],
                                       "ptx_version": ptx_version})
    meta = compiled.metadata
    for scratch in ("global_scratch_size", "profile_scratch_size"):
        if getattr(meta, scratch, 0):
            raise RuntimeError(f"{plugin}: the kernel needs {scratch}={getattr(meta, scratch)}, "
                               "which TensorRT's AOT launcher cannot provide")
    ptx, removed = strip_hidden_params(compiled.asm["ptx"], meta.name, len(params))
    return CompiledKernel(plugin, meta.name, ptx, meta.num_warps, meta.shared, constants, removed)


def strip_hidden_params(ptx: str, entry: str, declared: int) -> tuple[str, int]:
    """Drop entry parameters after the first ``declared`` ones; they must be unused."""
    match = re.search(rf"\.entry\s+{re.escape(entry)}\s*\((.*?)\)", ptx, re.S)
    if match is None:
        raise RuntimeError(f"no .entry {entry} in the PTX")
    params = [p.strip() for p in match.group(1).split(",") if p.strip()]
    hidden = params[declared:]
    for param in hidden:
        name = param.split()[-1]
        if len(re.findall(rf"\b{re.escape(name)}\b", ptx)) > 1:
            raise RuntimeError(f"{entry}: hidden parameter {name} is used by the kernel")
    if not hidden:
        return ptx, 0
    kept = ",\n\t".join(params[:declared])
    start, end = match.span(1)
    return ptx[:start] + "\n\t" + kept + "\n" + ptx[end:], len(hidden)

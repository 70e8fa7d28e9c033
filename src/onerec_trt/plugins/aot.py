"""Ahead-of-time compilation of the plugin kernels to PTX (for TensorRT's ``aot_impl``).

Needs only triton (>= ``spec.MIN_TRITON``): ``triton.compile`` with an explicit target runs
without a GPU, so the PTX a TensorRT engine would embed can be produced and assembled
(``ptxas``) on any machine.

The target is the compute capability of the GPU the engine is built on (``arch``, e.g. 89 for
Ada, 90 for Hopper): Triton emits ``sm_90a``/``sm_100a`` PTX from 9.0 on (its
``sm_arch_from_capability``), which only that exact compute capability can load, and an engine
without hardware compatibility runs only on its build GPU's compute capability anyway.

TensorRT's AOT launcher passes exactly (inputs, int32 extra args, outputs). Triton >= 3.3 adds
hidden trailing pointer parameters (global and profile scratch); the kernels need no scratch
(checked), so the unused hidden parameters are removed from the PTX entry's signature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from onerec_trt.errors import user_error
from onerec_trt.plugins.spec import (
    CODES_TO_ITEM,
    MIN_TRITON,
    TRIE_BEAM_EXPAND,
    TRIE_BEAM_SELECT,
    version_text,
)

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
# The oldest PTX ISA that knows each target (LLVM's NVPTX.td processor table: sm_89 PTX 7.8,
# sm_90a 8.0, sm_100a/101a 8.6, sm_120a 8.7, sm_103a/121a 8.8, sm_88/110a 9.0). The PTX ISA
# a kernel is written in is the larger of this and PTX_VERSION.
MIN_PTX_ISA = {75: 63, 80: 70, 86: 71, 87: 74, 88: 90, 89: 78, 90: 80, 100: 86, 101: 86, 103: 88,
               110: 90, 120: 87, 121: 88}
# Dynamic shared memory a kernel may use without cudaFuncSetAttribute(
# cudaFuncAttributeMaxDynamicSharedMemorySize), which TensorRT's AOT launcher is not known to
# call (its KernelLaunchParams carries only the byte count); hardware-compatible engines are
# held to the same 48 KiB.
SHARED_MEMORY_LIMIT = 48 * 1024
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
    arch: int  # the compute capability the PTX targets (ptx_target(arch))


def arch_of(capability: tuple[int, int]) -> int:
    """Compute capability (9, 0) -> 90, the ``arch`` Triton's GPUTarget takes."""
    major, minor = (int(x) for x in capability)
    return 10 * major + minor


def ptx_target(arch: int) -> str:
    """The PTX ``.target`` Triton writes for ``arch`` (``sm_90a`` from 9.0 on: the "a" targets
    load only on that exact compute capability)."""
    return f"sm_{arch}{'a' if arch >= 90 else ''}"


def ptx_version_for(arch: int) -> int | None:
    """The PTX ISA to write for ``arch``: PTX_VERSION, raised to what the target needs; None
    (the newest the installed ptxas knows) for a target newer than MIN_PTX_ISA lists."""
    if arch > max(MIN_PTX_ISA):
        return None
    known = [a for a in MIN_PTX_ISA if a <= arch]
    if not known:
        raise user_error(f"compute capability {arch // 10}.{arch % 10} is too old for the "
                         "plugin kernels", "TensorRT 10 and Triton need 7.5 or newer")
    return max(PTX_VERSION, MIN_PTX_ISA[arch] if arch in MIN_PTX_ISA else MIN_PTX_ISA[max(known)])


def check_triton_version(version: str) -> None:
    """The kernels compile only with Triton >= MIN_TRITON (a clear error otherwise)."""
    parts = []
    for piece in str(version).split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    if tuple(parts) < MIN_TRITON:
        raise user_error(f"Triton {version} is too old for the plugin kernels: they need Triton "
                         f">= {version_text(MIN_TRITON)} (ASTSource(constexprs=...) from 3.2, the "
                         "hidden scratch parameters aot.py strips from 3.3)",
                         "pip install 'onerec-trt[tensorrt]' (torch >= 2.7 brings Triton 3.3)")


def check_shared_memory(plugin: str, shared: int, constants: dict) -> None:
    """Refuse a kernel that needs more dynamic shared memory than a plain launch gets."""
    if shared > SHARED_MEMORY_LIMIT:
        raise user_error(f"{plugin}: this configuration ({constants}) needs {shared} bytes of "
                         f"shared memory per block, above the {SHARED_MEMORY_LIMIT} bytes "
                         "(48 KiB) a kernel gets without opting in, which TensorRT's AOT "
                         "launcher does not do", "use a smaller beam_out (docs/plugins.md says "
                         "which sizes were measured)")


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
                   vocab: int = 1, beams: int = 1, arch: int,
                   ptx_version: int | None | str = "auto") -> CompiledKernel:
    """PTX of a plugin's kernel for compute capability ``arch`` (``arch_of`` of the GPU the
    engine is built on, e.g. 89 for L4/L40S, 90 for H100/H200; no default: PTX for another
    compute capability does not load, see the module docstring).

    ``ptx_version`` (e.g. 80 = PTX ISA 8.0): the driver that loads the engine JIT-compiles the
    PTX and must know that ISA; "auto" is ``ptx_version_for(arch)``, None the newest the
    installed ptxas knows."""
    import triton
    from triton.backends.compiler import GPUTarget

    from onerec_trt.plugins.kernels import NUM_WARPS

    check_triton_version(triton.__version__)
    if ptx_version == "auto":
        ptx_version = ptx_version_for(arch)
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
    check_shared_memory(plugin, meta.shared, constants)
    ptx, removed = strip_hidden_params(compiled.asm["ptx"], meta.name, len(params))
    return CompiledKernel(plugin, meta.name, ptx, meta.num_warps, meta.shared, constants, removed,
                          arch)


# How TensorRT launches each kernel (``aot_impl``'s KernelLaunchParams and extra int32 args), as
# functions of the shapes: ints in the device check (scripts/device_plugins.py), TensorRT's
# shape expressions in ``tensorrt_plugins``, so both launch exactly the same way.
def expand_launch(n, beams, vocab, step, levels1):
    """TrieBeamExpand: grid (N, B), extra args (B, V, step, L + 1)."""
    return (n, beams), [beams, vocab, step, levels1]


def select_launch(n, beams, vocab, step, levels1, beam_out):
    """TrieBeamSelect: grid (N,), extra args (B, V, step, L + 1, B')."""
    return (n,), [beams, vocab, step, levels1, beam_out]


def codes_launch(rows, levels, cdiv):
    """CodesToItem: grid (cdiv(N * K, CODES_BLOCK),), extra args (N * K, L)."""
    return (cdiv(rows, CODES_BLOCK),), [rows, levels]


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

"""TensorRT registration of the plugins: ``tensorrt.plugin`` (QDP) ``register`` + ``aot_impl``.

``register_plugins()`` defines, for each op of ``spec.PLUGINS``, a shape/dtype descriptor and an
AOT implementation that returns the Triton kernel compiled to PTX (``aot.py``), so the kernel
is embedded in the engine and running it needs no Python (trtexec, the C++ runtime, Triton's
TensorRT backend). Call it before parsing a ``*.plugins.onnx`` graph; TensorRT's ONNX parser
then finds the creators by op_type and ``plugin_namespace``.

Importable without TensorRT: ``tensorrt`` is imported inside ``register_plugins``. This module
has no ``from __future__ import annotations`` on purpose: TensorRT's validator reads the real
annotation classes (``trtp.TensorDesc``), not strings.

The kernels are compiled for the compute capability of the GPU registration runs on (the build
GPU; ``registered_arch()`` says which, and the build records it in the engine's metadata).

Never run here: no TensorRT can be installed on this project's machines (docs/plugins.md).
"""

import functools

from onerec_trt.errors import user_error
from onerec_trt.plugins.spec import (
    CODES_TO_ITEM,
    MIN_TENSORRT,
    PLUGINS,
    TRIE_BEAM_EXPAND,
    TRIE_BEAM_SELECT,
    candidates_per_beam,
    version_text,
)

__all__ = ["register_plugins", "registered_arch", "device_arch"]

_REGISTERED: dict = {}  # "arch": the compute capability the aot_impl kernels target


def device_arch() -> int:
    """``aot.arch_of`` the current CUDA device's compute capability (the build GPU)."""
    import torch

    from onerec_trt.plugins.aot import arch_of

    if not torch.cuda.is_available():
        raise user_error("registering the onerec plugins needs a CUDA GPU: their kernels are "
                         "compiled for the GPU the engine is built on")
    return arch_of(torch.cuda.get_device_capability())


def registered_arch() -> int | None:
    """The compute capability the registered plugins compile for (None: not registered)."""
    return _REGISTERED.get("arch")


@functools.cache
def register_plugins(arch: int | None = None) -> tuple:
    """Register every plugin with TensorRT (once per process); returns their plugin ids.
    ``arch``: the compute capability to compile for (default: the current GPU's)."""
    try:
        import tensorrt as trt
        import tensorrt.plugin as trtp
    except ImportError:
        raise user_error("registering the onerec plugins needs TensorRT's Python package",
                         f"TensorRT >= {version_text(MIN_TENSORRT)} (tensorrt.plugin.aot_impl) "
                         "on a machine with a GPU; see docs/plugins.md") from None
    if not hasattr(trtp, "aot_impl"):
        raise user_error(f"TensorRT {trt.__version__} has no tensorrt.plugin.aot_impl",
                         f"AOT Python plugins need TensorRT >= {version_text(MIN_TENSORRT)}")
    import triton

    from onerec_trt.plugins.aot import check_triton_version

    check_triton_version(triton.__version__)  # before any aot_impl is defined
    arch = device_arch() if arch is None else int(arch)
    _define_expand(trt, trtp, arch)
    _define_select(trt, trtp, arch)
    _define_codes_to_item(trt, trtp, arch)
    _REGISTERED["arch"] = arch
    return tuple(spec.plugin_id for spec in PLUGINS.values())


def _dtype_name(trt, dtype) -> str:
    names = {trt.float32: "float32", trt.bfloat16: "bfloat16"}
    if dtype not in names:
        raise ValueError(f"TrieBeamExpand: logits must be float32 or bf16, got {dtype}")
    return names[dtype]


def _launch(trtp, kernel, grid: tuple, extra: list):
    """(kernel name, PTX, launch parameters, extra int32 arguments) for ``aot_impl``."""
    params = trtp.KernelLaunchParams()
    params.grid_x = grid[0]
    if len(grid) > 1:
        params.grid_y = grid[1]
    params.block_x = kernel.num_warps * 32
    params.shared_mem = kernel.shared
    args = trtp.SymIntExprs.from_tuple([e if isinstance(e, trtp.SymInt32) else trtp.SymInt32(e)
                                        for e in extra])
    return kernel.name, kernel.ptx, params, args


def _define_expand(trt, trtp, arch: int) -> None:
    from onerec_trt.plugins.aot import compile_kernel, expand_launch

    @trtp.register(TRIE_BEAM_EXPAND.plugin_id)
    def trie_beam_expand(logits: trtp.TensorDesc, scores: trtp.TensorDesc,
                         node: trtp.TensorDesc, indptr: trtp.TensorDesc,
                         child_code: trtp.TensorDesc, offsets: trtp.TensorDesc,
                         step: int, beam_out: int, vocab: int) -> trtp.TensorDesc:
        kc = candidates_per_beam(beam_out, vocab)
        return trtp.from_shape_expr((logits.shape_expr[0], logits.shape_expr[1], kc),
                                    dtype=trt.int64)

    @trtp.aot_impl(TRIE_BEAM_EXPAND.plugin_id)
    def trie_beam_expand_aot(
        logits: trtp.TensorDesc, scores: trtp.TensorDesc, node: trtp.TensorDesc,
        indptr: trtp.TensorDesc, child_code: trtp.TensorDesc, offsets: trtp.TensorDesc,
        step: int, beam_out: int, vocab: int, outputs: tuple[trtp.TensorDesc], tactic: int,
    ) -> tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymExprs]:
        kernel = compile_kernel(TRIE_BEAM_EXPAND.name, logits_dtype=_dtype_name(trt, logits.dtype),
                                beam_out=beam_out, vocab=vocab, arch=arch)
        grid, extra = expand_launch(logits.shape_expr[0], logits.shape_expr[1], vocab, step,
                                    offsets.shape_expr[1])
        return _launch(trtp, kernel, grid, extra)


def _define_select(trt, trtp, arch: int) -> None:
    from onerec_trt.plugins.aot import compile_kernel, select_launch

    @trtp.register(TRIE_BEAM_SELECT.plugin_id)
    def trie_beam_select(cand: trtp.TensorDesc, node: trtp.TensorDesc,
                         indptr: trtp.TensorDesc, child_code: trtp.TensorDesc,
                         offsets: trtp.TensorDesc, step: int, beam_out: int, vocab: int,
                         ) -> tuple[trtp.TensorDesc, trtp.TensorDesc, trtp.TensorDesc,
                                    trtp.TensorDesc]:
        shape = (cand.shape_expr[0], beam_out)
        return (trtp.from_shape_expr(shape, dtype=trt.float32),
                trtp.from_shape_expr(shape, dtype=trt.int64),
                trtp.from_shape_expr(shape, dtype=trt.int64),
                trtp.from_shape_expr(shape, dtype=trt.int64))

    @trtp.aot_impl(TRIE_BEAM_SELECT.plugin_id)
    def trie_beam_select_aot(
        cand: trtp.TensorDesc, node: trtp.TensorDesc, indptr: trtp.TensorDesc,
        child_code: trtp.TensorDesc, offsets: trtp.TensorDesc, step: int, beam_out: int,
        vocab: int, outputs: tuple[trtp.TensorDesc], tactic: int,
    ) -> tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymExprs]:
        beams = cand.shape[1]  # B sizes an in-register block: it must be static
        if beams < 1:
            raise ValueError("TrieBeamSelect needs a static beam axis (dimension 1 of cand)")
        kernel = compile_kernel(TRIE_BEAM_SELECT.name, beam_out=beam_out, vocab=vocab,
                                beams=beams, arch=arch)
        grid, extra = select_launch(cand.shape_expr[0], cand.shape_expr[1], vocab, step,
                                    offsets.shape_expr[1], beam_out)
        return _launch(trtp, kernel, grid, extra)


def _define_codes_to_item(trt, trtp, arch: int) -> None:
    from onerec_trt.plugins.aot import codes_launch, compile_kernel

    @trtp.register(CODES_TO_ITEM.plugin_id)
    def codes_to_item(codes: trtp.TensorDesc, indptr: trtp.TensorDesc,
                      child_code: trtp.TensorDesc, offsets: trtp.TensorDesc,
                      leaf_item: trtp.TensorDesc) -> trtp.TensorDesc:
        return trtp.from_shape_expr((codes.shape_expr[0], codes.shape_expr[1]), dtype=trt.int64)

    @trtp.aot_impl(CODES_TO_ITEM.plugin_id)
    def codes_to_item_aot(
        codes: trtp.TensorDesc, indptr: trtp.TensorDesc, child_code: trtp.TensorDesc,
        offsets: trtp.TensorDesc, leaf_item: trtp.TensorDesc, outputs: tuple[trtp.TensorDesc],
        tactic: int,
    ) -> tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymExprs]:
        kernel = compile_kernel(CODES_TO_ITEM.name, arch=arch)
        grid, extra = codes_launch(codes.shape_expr[0] * codes.shape_expr[1],
                                   codes.shape_expr[2], trtp.cdiv)
        return _launch(trtp, kernel, grid, extra)

"""Beam-search decoder plugins: the plugin set (``spec``), the torch reference (``reference``),
Triton kernels (``kernels``), TensorRT registration (``tensorrt_plugins``, ``aot``), ONNX Runtime
custom ops (``ort_ops``) and the graph swap (``graph_swap``; stage entry ``swap`` below).

Importing this package imports nothing heavy: the GPU machine runs ``kernels`` with only torch,
triton and numpy.
"""

from __future__ import annotations

__all__ = ["swap", "PluginSwapOptions"]


def swap(opts, log=print) -> dict:
    """The plugins stage (see ``stage.py``): write ``*.plugins.onnx`` / ``*.plugins.cpu.onnx``."""
    from onerec_trt.plugins.stage import swap as _swap

    return _swap(opts, log)


def __getattr__(name: str):
    if name == "PluginSwapOptions":
        from onerec_trt.plugins.stage import PluginSwapOptions

        return PluginSwapOptions
    raise AttributeError(name)

"""What computes a request, as objects with one small interface (``backend.Backend``):
``OrtBackend(graph)``, ``TrtBackend(plan)``, ``TorchBackend(model, dtype)``,
``HfOracle(model)``. verify and bench take them; only ``onerec_trt.commands`` turns the CLI's
strings (``FILE.onnx``, ``torch:bf16``, ``ort-fp8``, ...) into them. Also the TensorRT runtime
(``tensorrt.load``) and engine metadata. Importing this package imports nothing heavy."""

from onerec_trt.backends.backend import KINDS, Backend
from onerec_trt.backends.hf_oracle import HfOracle
from onerec_trt.backends.ort_backend import OrtBackend
from onerec_trt.backends.torch_backend import TorchBackend
from onerec_trt.backends.trt_backend import TrtBackend

__all__ = ["Backend", "KINDS", "OrtBackend", "TrtBackend", "TorchBackend", "HfOracle"]

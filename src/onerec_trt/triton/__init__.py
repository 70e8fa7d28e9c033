"""The triton stage: a Triton Inference Server model repository and a local tritonserver.

``export_repository`` lays out the repository (GPU: the TensorRT engine as ``tensorrt_plan``;
CPU: a python-backend model running the ONNX graph with ONNX Runtime; one contract for both),
``check_repository`` checks one without a server, ``TritonServer`` runs a CPU repository on
127.0.0.1, ``load_test`` measures it. See docs/triton.md.
"""

from onerec_trt.triton.check import check_repository
from onerec_trt.triton.loadtest import LoadTestOptions, TritonClient, load_test
from onerec_trt.triton.repository import RepositoryOptions, export_repository
from onerec_trt.triton.server import ServerOptions, TritonServer

__all__ = ["export_repository", "RepositoryOptions", "check_repository", "TritonServer",
           "ServerOptions", "load_test", "LoadTestOptions", "TritonClient"]

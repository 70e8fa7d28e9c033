"""Triton python model: runs the exported generation graph with ONNX Runtime on the CPU.

All requests Triton's dynamic batcher hands over in one ``execute`` call run as one batch
(rows are independent, so each user's result does not depend on its batch-mates) and are split
back per request.

Parameters (config.pbtxt): ``onnx_file`` (in the version folder), ``intra_op_threads``
(0: ONNX Runtime's default), ``num_items`` (optional): when given, each request is checked with
the guard's own rules (``guard.py``, copied beside this file) before it runs, so this model gives
the guard's answers even when called directly (gRPC reaches every loaded model; Triton has no
per-model access control). A bad request gets its own error and never spoils its batch-mates.

The session options repeat ``onerec_trt.graphs.session_options``: the repository must
run where ``onerec_trt`` is not installed, and FP8 Q/DQ graphs need ORT's QDQ fusion off on the
CPU (it builds an FP8 MatMulIntegerToFloat that has no kernel).
"""

import importlib.util
import json
from pathlib import Path

import numpy as np

try:  # only inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported by tests for ``session_options``
    pb_utils = None


def session_options(threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.disable_quant_qdq", "1")
    opts.log_severity_level = 3
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = threads
    return opts


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        folder = Path(args["model_repository"]) / args["model_version"]
        self.session = ort.InferenceSession(
            str(folder / params["onnx_file"]),
            session_options(int(params.get("intra_op_threads", "0"))),
            providers=["CPUExecutionProvider"])
        self.input = config["input"][0]["name"]
        self.outputs = [o["name"] for o in config["output"]]
        self.num_items = int(params["num_items"]) if "num_items" in params else None
        self.check = load_check(Path(__file__).resolve().parent) if self.num_items else None

    def problem(self, history: np.ndarray) -> str | None:
        return self.check(history, self.num_items) if self.check else None

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        problems = [self.problem(arr) for arr in arrays]
        good = [arr for arr, problem in zip(arrays, problems, strict=True) if problem is None]
        results = None
        if good:
            try:
                results = self.session.run(self.outputs, {self.input: np.concatenate(good)})
            except Exception as exc:  # ORT's own exception types; answer every request with it
                error = pb_utils.TritonError(f"onnxruntime: {str(exc).splitlines()[0]}")
                return [pb_utils.InferenceResponse(output_tensors=[], error=error)
                        for _ in requests]
        responses, start = [], 0
        for arr, problem in zip(arrays, problems, strict=True):
            if problem is not None:
                error = pb_utils.TritonError(problem, pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
                continue
            stop = start + arr.shape[0]
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(value[start:stop]))
                       for name, value in zip(self.outputs, results, strict=True)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start = stop
        return responses


def load_check(folder: Path):
    """``check_history`` of the guard file copied beside this one (model.py is loaded by file
    path, so a sibling module is not importable by name)."""
    spec = importlib.util.spec_from_file_location("onerec_guard_rules", folder / "guard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.check_history

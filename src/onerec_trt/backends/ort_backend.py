"""``OrtBackend``: a graph on ONNX Runtime's CPU provider (plugin-bearing graphs get their
custom ops registered), through Polygraphy's own ``OnnxrtRunner``."""

from __future__ import annotations

from pathlib import Path

from onerec_trt.artifacts import package_versions
from onerec_trt.backends.backend import Backend
from onerec_trt.errors import user_error
from onerec_trt.export import find_report
from onerec_trt.graphs import check_data_files
from onerec_trt.provenance import check_same_model, recorded_model


class OrtBackend(Backend):
    """``graph``: an ``.onnx`` file. ``model_sha``: the model it must have been exported from
    (None: not checked); ``threads``: ONNX Runtime's intra-op threads (None: its default)."""

    kind = "ort"

    def __init__(self, graph: str | Path, *, model_sha: str | None = None,
                 threads: int | None = None, precision: str | None = None,
                 name: str | None = None, role: str = "graph"):
        import onnx

        path = Path(graph)
        if not path.is_file():
            raise user_error(f"{role} graph not found: {path}")
        try:
            proto = onnx.load(str(path), load_external_data=False).graph
        except Exception as exc:
            raise user_error(f"{role} {path} is not an ONNX model: {exc}") from None
        check_same_model(recorded_model(path), model_sha, f"{role} {path}", artifact=path)
        check_data_files(path)
        initializers = {i.name for i in proto.initializer}
        self.path, self.name, self.threads, self.precision = path, name or str(graph), threads, \
            precision
        self.inputs = [i.name for i in proto.input if i.name not in initializers]
        self.outputs = [o.name for o in proto.output]
        self.export = find_report(path)

    def recorded_model(self) -> str | None:
        return recorded_model(self.path)

    def _make_runner(self, name: str):
        from polygraphy.backend.onnxrt import OnnxrtRunner

        from onerec_trt.graphs import make_session

        path, threads = self.path, self.threads
        return OnnxrtRunner(lambda: make_session(path, threads), name=name)

    def library(self) -> str:
        return f"onnxruntime {package_versions().get('onnxruntime')} CPUExecutionProvider"

    def info(self) -> dict:
        import onnxruntime as ort

        return {"onnxruntime": ort.__version__, "providers": self._runner.sess.get_providers(),
                "threads": self.threads}

"""``TrtBackend``: a TensorRT plan built by ``onerec-trt build`` (TensorRT and a GPU needed).

Importable without TensorRT. Making one runs every check that needs no TensorRT (metadata
present, same model, plan matches its metadata, plugin code the metadata names), then imports
TensorRT (one clear line where it is absent, not a traceback in the middle of verify); the
TensorRT version and the GPU are checked when it opens (``tensorrt.load``).
"""

from __future__ import annotations

from pathlib import Path

from onerec_trt.backends.backend import Backend
from onerec_trt.backends.metadata import EngineMetadata
from onerec_trt.backends.tensorrt_lib import PluginsToLoad, import_tensorrt
from onerec_trt.errors import user_error
from onerec_trt.provenance import check_same_model


class TrtBackend(Backend):
    """``plan``: a ``.plan`` with its metadata JSON beside it. ``cuda_graphs``: one CUDA graph
    per batch size (the serving setting, bench's); ``plugins``: plugin code you trust this
    engine to load beyond this project's own."""

    kind = "trt"

    def __init__(self, plan: str | Path, *, model_sha: str | None = None,
                 cuda_graphs: bool = False, plugins: PluginsToLoad | None = None,
                 name: str | None = None, role: str = "engine"):
        from onerec_trt.backends.tensorrt import allowed_plugins
        from onerec_trt.export import ExportReport

        path = Path(plan)
        if not path.is_file():
            raise user_error(f"{role} engine not found: {path}")
        meta = EngineMetadata.read(path)
        check_same_model(meta.model_sha256, model_sha, f"{role} {path}",
                         "export, quantize and build this model first")
        meta.check_plan(path.read_bytes(), f"{role} {path}")
        allowed_plugins(meta)  # metadata naming plugin code of its own: refused here, not later
        import_tensorrt()
        self.path, self.name, self.meta, self.model_sha = path, name or str(plan), meta, model_sha
        self.cuda_graphs, self.plugins = cuda_graphs, plugins
        self.precision = meta.precision
        self.inputs, self.outputs = list(meta.inputs), list(meta.outputs)
        export = meta.raw.get("export")
        self.export = ExportReport.from_json(export) if export else None

    @property
    def max_batch(self) -> int | None:
        """The optimization profile's largest batch."""
        return self.meta.max_batch

    def recorded_model(self) -> str | None:
        return self.meta.model_sha256

    def _make_runner(self, name: str):
        from onerec_trt.backends.tensorrt import TrtEngineRunner

        return TrtEngineRunner(self.path, self.model_sha, cuda_graphs=self.cuda_graphs,
                               name=name, plugins=self.plugins)

    def library(self) -> str:
        return "tensorrt"

    def info(self) -> dict:
        engine = self._runner.engine
        size = getattr(engine.engine, "device_memory_size_v2", None) or \
            getattr(engine.engine, "device_memory_size", None)
        return {"device": "cuda", "engine_device_memory": size, "notes": engine.notes}

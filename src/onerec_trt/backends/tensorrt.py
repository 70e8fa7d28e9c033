"""The TensorRT runtime: ``load(plan)`` checks a plan's metadata against the running TensorRT and
GPU before deserializing it, then runs it on a CUDA stream with torch CUDA tensors as buffers
(optionally one CUDA graph per batch size). ``TrtEngineRunner`` wraps it as a Polygraphy runner;
``trt_backend.TrtBackend`` is the backend object verify and bench take.

Written against TensorRT's documented Python API (TENSORRT.md section 5): TensorRT cannot be
installed on this project's machines, so the parts after ``import_tensorrt()`` have not run
here (docs/tensorrt.md). Everything before them (metadata, plan header, model hash) has.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onerec_trt.backends.metadata import EngineMetadata, current_gpu
from onerec_trt.backends.tensorrt_lib import (
    PluginsToLoad,
    import_tensorrt,
    load_libraries,
    load_plugin_module,
    plugins_to_load,
    version_notes,
)
from onerec_trt.errors import UserError, user_error
from onerec_trt.provenance import check_same_model

log = logging.getLogger(__name__)

try:  # Polygraphy is optional at import time (the GPU machine has none); the runner needs it
    from polygraphy.backend.base import BaseRunner
except ImportError:  # pragma: no cover - exercised only where Polygraphy is absent
    BaseRunner = object

__all__ = ["load", "Engine", "TrtEngineRunner", "ShapeCache", "allowed_plugins"]

# Input shapes whose buffers (and CUDA graph) an Engine keeps; the least recently used go first.
MAX_CACHED_SHAPES = 4

# TensorRT DataType names -> torch dtype names (resolved lazily: torch.<name>)
TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8",
                "INT32": "int32", "INT64": "int64", "BOOL": "bool", "UINT8": "uint8",
                "FP8": "float8_e4m3fn"}


def torch_dtype(trt_name: str):
    import torch

    if trt_name not in TORCH_DTYPES:
        raise user_error(f"engine I/O of TensorRT type {trt_name} has no torch dtype")
    return getattr(torch, TORCH_DTYPES[trt_name])


@dataclass
class Buffers:
    """Device tensors bound to the context for one set of input shapes (and its CUDA graph)."""

    shapes: dict[str, tuple[int, ...]]
    tensors: dict  # name -> torch CUDA tensor, inputs and outputs
    graph: object | None = None


class ShapeCache:
    """Per input-shape state (``Buffers``), least recently used evicted past ``limit``: without a
    bound an engine serving every batch size 1-256 would keep 256 sets of device buffers and
    CUDA graphs forever."""

    def __init__(self, limit: int = MAX_CACHED_SHAPES):
        if limit < 1:
            raise user_error(f"the shape cache needs room for at least one shape, got {limit}")
        self.limit = limit
        self._items: OrderedDict = OrderedDict()

    def get(self, key):
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key, value) -> list:
        """Store ``value``; returns the evicted values (their buffers and graphs go with them)."""
        self._items[key] = value
        self._items.move_to_end(key)
        evicted = []
        while len(self._items) > self.limit:
            evicted.append(self._items.popitem(last=False)[1])
        return evicted

    def keys(self) -> list:
        return list(self._items)

    def values(self) -> list:
        return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()


@dataclass
class Engine:
    """A deserialized plan, its execution context and a stream. Use ``infer`` (torch tensors
    on the GPU) or ``infer_numpy`` (host arrays)."""

    path: Path
    meta: EngineMetadata
    engine: object
    context: object
    stream: object  # torch.cuda.Stream
    inputs: list[str]
    outputs: list[str]
    dtypes: dict[str, str]  # TensorRT DataType name per I/O tensor
    cuda_graphs: bool = False
    notes: list[str] = field(default_factory=list)
    runtime: object = None  # must outlive the engine it deserialized
    max_cached_shapes: int = MAX_CACHED_SHAPES
    plugin_libraries: list = field(default_factory=list)  # handles, alive with the engine
    _buffers: ShapeCache | None = None

    def __post_init__(self):
        if self._buffers is None:
            self._buffers = ShapeCache(self.max_cached_shapes)

    def _check_feed(self, feed: dict) -> dict[str, tuple[int, ...]]:
        missing = [n for n in self.inputs if n not in feed]
        if missing:
            raise user_error(f"{self.path.name}: missing input(s) {missing}")
        shapes = {n: tuple(int(d) for d in feed[n].shape) for n in self.inputs}
        lo, hi = self.meta.min_batch, self.meta.max_batch
        for name, shape in shapes.items():
            if not lo <= shape[0] <= hi:
                raise user_error(f"{self.path.name}: batch {shape[0]} of '{name}' is outside the "
                                 f"engine's profile {lo}-{hi}",
                                 "rebuild with other --min-batch/--max-batch, or split the batch")
        return shapes

    def _allocate(self, shapes: dict[str, tuple[int, ...]]) -> Buffers:
        import torch

        for name, shape in shapes.items():
            if not self.context.set_input_shape(name, shape):
                raise user_error(f"{self.path.name}: TensorRT refused shape {shape} for '{name}'")
        device = torch.device("cuda", self.stream.device.index)
        tensors = {n: torch.empty(s, dtype=torch_dtype(self.dtypes[n]), device=device)
                   for n, s in shapes.items()}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise user_error(f"{self.path.name}: output '{name}' has a data-dependent shape "
                                 f"{shape}; this runtime needs shapes known from the inputs")
            tensors[name] = torch.empty(shape, dtype=torch_dtype(self.dtypes[name]),
                                        device=device)
        return Buffers(shapes, tensors)

    def _bind(self, buffers: Buffers) -> None:
        """Put the context in this shape's state: its input shapes and tensor addresses (the
        context is shared by every cached shape, and a graph replays against it)."""
        for name, shape in buffers.shapes.items():
            if not self.context.set_input_shape(name, shape):
                raise user_error(f"{self.path.name}: TensorRT refused shape {shape} for '{name}'")
        for name, tensor in buffers.tensors.items():
            self.context.set_tensor_address(name, tensor.data_ptr())

    def _enqueue(self, buffers: Buffers) -> None:
        self._bind(buffers)
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError(f"{self.path.name}: TensorRT execute_async_v3 failed")

    def _capture(self, buffers: Buffers) -> None:
        """One CUDA graph per input shape: run once (TensorRT finishes shape-dependent setup on
        the first enqueue after a shape change), then capture the enqueue on our stream."""
        import torch

        self._enqueue(buffers)
        self.stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream):
            self._enqueue(buffers)
        buffers.graph = graph

    def infer(self, feed: dict) -> dict:
        """Run one batch; returns the outputs as torch CUDA tensors (fresh copies)."""
        import torch

        shapes = self._check_feed(feed)
        key = tuple(sorted(shapes.items()))
        buffers = self._buffers.get(key)
        if buffers is None:
            buffers = self._allocate(shapes)
            self._buffers.put(key, buffers)  # the evicted shapes' buffers and graphs are freed
        with torch.cuda.stream(self.stream):
            for name in self.inputs:
                value = feed[name]
                value = value if isinstance(value, torch.Tensor) else \
                    torch.from_numpy(np.ascontiguousarray(value))
                if value.dtype != buffers.tensors[name].dtype:
                    raise user_error(f"{self.path.name}: input '{name}' is {value.dtype}, the "
                                     f"engine takes {buffers.tensors[name].dtype}")
                buffers.tensors[name].copy_(value, non_blocking=True)
            if self.cuda_graphs and buffers.graph is None:
                self._capture(buffers)
            if buffers.graph is not None:
                self._bind(buffers)  # another shape may have run since this graph's capture
                buffers.graph.replay()
            else:
                self._enqueue(buffers)
            outputs = {n: buffers.tensors[n].clone() for n in self.outputs}
        self.stream.synchronize()
        return outputs

    def infer_numpy(self, feed: dict) -> dict[str, np.ndarray]:
        return {n: t.cpu().numpy() for n, t in self.infer(feed).items()}

    def close(self) -> None:
        self._buffers.clear()
        self.context = self.engine = self.runtime = None


def allowed_plugins(meta: EngineMetadata, modules: Sequence[str] = (),
                    libraries: Sequence[str] = ()) -> PluginsToLoad:
    """The plugin code loading this engine may run (``tensorrt_lib.plugins_to_load``): none
    for an engine without plugin nodes, unless the user names some."""
    if not meta.plugins:
        return PluginsToLoad(list(modules), list(libraries))
    return plugins_to_load(meta.raw.get("build"), modules, libraries, str(meta.plan))


def _load_plugins(trt, allowed: PluginsToLoad, what: str) -> list:
    """Load the allowed plugin libraries and import the allowed modules (AOT Python plugins
    are baked into the plan; JIT ones need their module imported here)."""
    handles = load_libraries(trt.get_plugin_registry(), allowed.libraries, what) \
        if allowed.libraries else []
    for module in allowed.modules:
        try:
            load_plugin_module(module)
        except (ImportError, AttributeError, UserError) as exc:
            # AOT plugins need nothing at run time; a JIT one fails at deserialization
            log.info(f"note: plugin module {module} not loaded ({str(exc).splitlines()[0]})")
    return handles


def load(plan: str | Path, *, model_sha: str | None = None, cuda_graphs: bool = False,
         device: int = 0, max_cached_shapes: int = MAX_CACHED_SHAPES,
         plugin_modules: Sequence[str] = (), plugin_libraries: Sequence[str] = ()) -> Engine:
    """Check, then deserialize a plan built by ``onerec-trt build``. ``plugin_modules`` /
    ``plugin_libraries``: plugin code you trust this engine to load beyond this project's own
    (its metadata may name no other)."""
    path = Path(plan)
    if not path.is_file():
        raise user_error(f"engine not found: {path}")
    meta = EngineMetadata.read(path)
    allowed = allowed_plugins(meta, plugin_modules, plugin_libraries)  # before anything runs
    check_same_model(meta.model_sha256, model_sha, str(path),
                     "export, quantize and build this model first")
    data = path.read_bytes()
    meta.check_plan(data, str(path))
    trt = import_tensorrt()
    notes = meta.check_runtime(trt.__version__, current_gpu(device), str(path))
    for note in [*version_notes(trt.__version__), *notes]:
        log.info(f"note: {note}")
    libraries = _load_plugins(trt, allowed, str(path))
    import torch

    torch.cuda.set_device(device)
    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise user_error(f"TensorRT could not deserialize {path}", "its log above says why")
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    is_input = {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
    return Engine(path=path, meta=meta, engine=engine,
                  context=engine.create_execution_context(),
                  stream=torch.cuda.Stream(device=device),
                  inputs=[n for n in names if is_input[n]],
                  outputs=[n for n in names if not is_input[n]],
                  dtypes={n: engine.get_tensor_dtype(n).name for n in names},
                  cuda_graphs=cuda_graphs, notes=notes, runtime=runtime,
                  max_cached_shapes=max_cached_shapes, plugin_libraries=libraries)


class TrtEngineRunner(BaseRunner):
    """A plan as a Polygraphy runner (the template is Polygraphy's OnnxrtRunner): the engine is
    loaded in ``activate`` and freed in ``deactivate``; the input metadata comes from the
    plan's JSON, so it needs no TensorRT."""

    def __init__(self, plan: str | Path, model_sha: str | None = None,
                 cuda_graphs: bool = False, name: str | None = None,
                 plugins: PluginsToLoad | None = None):
        if BaseRunner is object:
            raise user_error("the TensorRT runner needs Polygraphy: pip install polygraphy")
        super().__init__(name=name, prefix="onerec-trt-runner")
        self.plan, self.model_sha, self.cuda_graphs = Path(plan), model_sha, cuda_graphs
        self.meta = EngineMetadata.read(self.plan)
        self.plugins = plugins or PluginsToLoad([], [])  # what the user named

    def activate_impl(self):
        self.engine = load(self.plan, model_sha=self.model_sha, cuda_graphs=self.cuda_graphs,
                           plugin_modules=self.plugins.modules,
                           plugin_libraries=self.plugins.libraries)

    def get_input_metadata_impl(self):
        return input_metadata(self.meta)

    def infer_impl(self, feed_dict):
        start = time.perf_counter()
        outputs = self.engine.infer_numpy(feed_dict)
        self.inference_time = time.perf_counter() - start
        return outputs

    def deactivate_impl(self):
        self.engine.close()
        del self.engine


def input_metadata(meta: EngineMetadata):
    """Polygraphy TensorMetadata of an engine's inputs, from its metadata (-1: dynamic)."""
    import torch
    from polygraphy.common import TensorMetadata

    out = TensorMetadata()
    for tensor in meta.inputs.values():
        out.add(tensor.name, getattr(torch, tensor.dtype), tensor.shape)
    return out

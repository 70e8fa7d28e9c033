"""ONNX graph files and ONNX Runtime sessions: what every stage that reads or runs a graph uses.

A graph past 1.5 GiB keeps its weights in ONNX external data, a file beside it
(``export.weights``); ``data_files`` names the files a graph reads, ``copy_graph`` moves a graph
with them (hard links where it can), and ``make_session`` refuses a graph whose data is missing.

``make_session`` opens any of our graphs on ONNX Runtime's CPU provider. A graph with nodes of
a custom domain (the plugin-bearing graphs) gets that domain's ops registered first: the module
that implements them is named in ``CUSTOM_OPS`` and imported only then, so this ground-floor
module never imports a stage package.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

from onerec_trt.errors import user_error

# custom op domain -> "module:function" registering its ONNX Runtime ops (once per process)
CUSTOM_OPS = {"onerec": "onerec_trt.plugins.ort_ops:register_ops"}


def session_options(threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # ORT's CPU QDQ fusion turns FP8 DequantizeLinear -> MatMul into MatMulIntegerToFloat, which
    # has no FP8 kernel (FACTS); the FP8 graph runs exactly with that fusion off.
    opts.add_session_config_entry("session.disable_quant_qdq", "1")
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    return opts


LARGE_BYTES = 2**30  # external weights past this: ONNX Runtime reads them in place (no prepacking)


def data_files(path: str | Path) -> list[Path]:
    """The external data files a graph's initializers live in (none for a self-contained one)."""
    import onnx

    path = Path(path)
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # protobuf's DecodeError and friends: not a graph
        raise user_error(f"{path} is not an ONNX model: {str(exc).splitlines()[0]}") from None
    names = {entry.value for t in graph.initializer
             if t.data_location == onnx.TensorProto.EXTERNAL
             for entry in t.external_data if entry.key == "location"}
    return [path.parent / name for name in sorted(names)]


def check_data_files(path: str | Path) -> list[Path]:
    """``data_files``, or a user error naming the first one that is missing."""
    files = data_files(path)
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise user_error(f"{path} keeps its weights in {missing[0].name}, which is not there",
                         "copy a graph together with its .data file (they are one artifact)")
    return files


def link_data(source: str | Path, folder: str | Path) -> list[Path]:
    """Put a graph's external data files into ``folder`` under their own names (the graph
    refers to them so): hard links where the filesystem allows, copies elsewhere."""
    linked = []
    Path(folder).mkdir(parents=True, exist_ok=True)
    for data in check_data_files(source):
        target = Path(folder) / data.name
        if not target.exists() or not target.samefile(data):
            link_or_copy(data, target)
        linked.append(target)
    return linked


def copy_graph(source: str | Path, target: str | Path) -> Path:
    """Copy a graph to ``target`` with its external data files beside it. The data files are
    hard-linked where possible (gigabytes of weights, never edited); the graph itself is copied,
    so that editing one folder's graph never edits another's."""
    source, target = Path(source), Path(target)
    link_data(source, target.parent)
    target.unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return target


def link_or_copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def read_external(tensor, folder: str | Path):
    """One external tensor's values, read from its data file (onnx's own loader refuses data
    files with several hard links, which is how later stages share a graph's weights)."""
    import numpy as np
    from onnx import helper

    info = {e.key: e.value for e in tensor.external_data}
    dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
    count = int(np.prod(tensor.dims, dtype=np.int64))
    with open(Path(folder) / info["location"], "rb") as handle:
        handle.seek(int(info.get("offset", 0)))
        values = np.fromfile(handle, dtype=dtype, count=count)
    return values.reshape(tuple(tensor.dims))


def check_structure(model) -> None:
    """``onnx.checker`` (full, with strict type and shape inference) on a graph whose weights
    may live in external data, without reading them: each external initializer is checked as a
    typed graph input instead (the checker refuses hard-linked data files).

    A graph input or output may leave its shape undeclared (inference and the runtimes work
    it out); the checker insists on one, so those are checked for their type and, outputs, for
    having a producer. Raises ``onnx.checker.ValidationError`` (structure) or
    ``onnx.shape_inference.InferenceError`` (types and shapes)."""
    import onnx
    from onnx import helper

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    g = copy.graph
    external = [t for t in g.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    kept = [t for t in g.initializer if t.data_location != onnx.TensorProto.EXTERNAL]
    del g.initializer[:]
    g.initializer.extend(kept)
    g.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                   for t in external)
    _check_producers(g)
    unshaped = [v for v in (*g.input, *g.output)
                if v.type.HasField("tensor_type") and not v.type.tensor_type.HasField("shape")]
    for value in unshaped:  # a placeholder for the structural check only
        value.type.tensor_type.shape.SetInParent()
    onnx.checker.check_model(copy, full_check=False)
    for value in unshaped:
        value.type.tensor_type.ClearField("shape")
    onnx.shape_inference.infer_shapes(copy, check_type=True, strict_mode=True)


def _check_producers(g) -> None:
    """Every graph output is computed, or is an input or initializer."""
    import onnx

    known = {o for n in g.node for o in n.output} | {i.name for i in g.input} | {
        t.name for t in g.initializer}
    missing = [o.name for o in g.output if o.name not in known]
    if missing:
        raise onnx.checker.ValidationError(f"Graph output '{missing[0]}' is not an output of "
                                           "any node in graph.")


def is_large(path: str | Path) -> bool:
    """Whether a graph's external weights pass ``LARGE_BYTES`` (a missing data file: a user
    error). Large graphs get an ONNX Runtime session that reads weights in place, and no
    session where a cheaper check will do."""
    return sum(f.stat().st_size for f in check_data_files(path)) > LARGE_BYTES


def declared_dims(value) -> list[int | str]:
    """A graph input's or output's declared dims (an onnx ValueInfoProto): ints, the symbolic
    dim's name, or "?" where the graph says nothing."""
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value.type.tensor_type.shape.dim]


def input_dims(path: str | Path, name: str) -> list[int | None] | None:
    """The declared dims of a graph input (None for a symbolic or unknown dim); None where the
    graph has no such input (weights are not read)."""
    import onnx

    for value in onnx.load(str(path), load_external_data=False).graph.input:
        if value.name == name:
            return [d if isinstance(d, int) else None for d in declared_dims(value)]
    return None


def custom_domains(path: str | Path) -> list[str]:
    """The custom op domains a graph's nodes use (weights are not read)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return sorted({n.domain for n in graph.node if n.domain not in ("", "ai.onnx")})


def _register_custom_ops(domains: list[str], opts) -> None:
    unknown = [d for d in domains if d not in CUSTOM_OPS]
    if unknown:
        raise user_error(f"the graph uses ops of the unknown domain {unknown[0]!r}",
                         f"ONNX Runtime here runs the domains {', '.join(CUSTOM_OPS)}")
    for domain in domains:
        module, _, function = CUSTOM_OPS[domain].partition(":")
        getattr(importlib.import_module(module), function)()
    from onnxruntime_extensions import get_library_path

    opts.register_custom_ops_library(get_library_path())


def make_session(path: str | Path, threads: int | None = None, providers=None):
    """An ONNX Runtime session for one of our graphs (plugin-bearing ones included)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise user_error(f"ONNX graph not found: {path}")
    opts = session_options(threads)
    if is_large(path):
        # prepacking copies every GEMM weight onto the heap, memory-mapped weights included;
        # the arena keeps the largest beam-step tensors allocated between calls
        opts.add_session_config_entry("session.disable_prepacking", "1")
        opts.enable_cpu_mem_arena = False
    domains = custom_domains(path)
    if domains:
        _register_custom_ops(domains, opts)
    providers = providers or ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as exc:  # ORT raises its own exception types for bad graphs
        raise user_error(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}") from None

"""What the lint needs to know about an ONNX graph: element types, shapes, producers,
consumers and the values of small constants (after ONNX shape inference)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

STANDARD_DOMAINS = ("", "ai.onnx")


def type_name(elem_type: int) -> str | None:
    """ONNX element type number -> name ("BFLOAT16"); None when unknown (0)."""
    if not elem_type:
        return None
    try:
        return TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"type {elem_type}"


@dataclass
class GraphIndex:
    model: onnx.ModelProto
    nodes: list[onnx.NodeProto]
    types: dict[str, str] = field(default_factory=dict)
    shapes: dict[str, list] = field(default_factory=dict)  # dims: int, str (symbolic) or None
    producer: dict[str, int] = field(default_factory=dict)  # tensor -> node index
    consumers: dict[str, list[int]] = field(default_factory=dict)
    constants: dict[str, np.ndarray | None] = field(default_factory=dict)  # None: not loaded
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    inference_error: str | None = None

    def label(self, index: int) -> str:
        node = self.nodes[index]
        return node.name or f"#{index}"

    def value(self, name: str) -> np.ndarray | None:
        return self.constants.get(name)

    def is_constant(self, name: str) -> bool:
        return name in self.constants

    def consumer_nodes(self, name: str) -> list[tuple[int, onnx.NodeProto]]:
        return [(i, self.nodes[i]) for i in self.consumers.get(name, [])]

    def producer_node(self, name: str) -> onnx.NodeProto | None:
        index = self.producer.get(name)
        return None if index is None else self.nodes[index]


def _tensor_value(tensor: onnx.TensorProto) -> np.ndarray | None:
    if tensor.data_location == TensorProto.EXTERNAL:
        return None
    try:
        return numpy_helper.to_array(tensor)
    except Exception:  # exotic types numpy cannot hold: a constant of unknown value
        return None


def _constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    for attr in node.attribute:
        if attr.name == "value":
            return _tensor_value(attr.t)
        if attr.name in ("value_int", "value_float"):
            return np.asarray(attr.i if attr.name == "value_int" else attr.f)
        if attr.name in ("value_ints", "value_floats"):
            return np.asarray(list(attr.ints if attr.name == "value_ints" else attr.floats))
    return None


def _record_value_info(index: GraphIndex, infos) -> None:
    for vi in infos:
        tt = vi.type.tensor_type
        name = type_name(tt.elem_type)
        if name:
            index.types[vi.name] = name
        if tt.HasField("shape"):
            index.shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else
                                     (d.dim_param or None) for d in tt.shape.dim]


def index_graph(model: onnx.ModelProto) -> GraphIndex:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        error = None
    except Exception as exc:  # a broken graph still gets linted with what it declares
        inferred, error = model, str(exc).splitlines()[0]
    g = inferred.graph
    index = GraphIndex(model=inferred, nodes=list(g.node), inference_error=error)
    for init in g.initializer:
        index.types[init.name] = type_name(init.data_type) or "UNDEFINED"
        index.shapes[init.name] = list(init.dims)
    _record_value_info(index, [*g.input, *g.output, *g.value_info])
    initializers = {i.name for i in g.initializer}
    index.inputs = [i.name for i in g.input if i.name not in initializers]
    index.outputs = [o.name for o in g.output]
    for i, node in enumerate(index.nodes):
        for name in node.output:
            if name:
                index.producer[name] = i
        for name in node.input:
            if name:
                index.consumers.setdefault(name, []).append(i)
    _record_constants(index, g)
    return index


def _record_constants(index: GraphIndex, graph: onnx.GraphProto) -> None:
    """Constant nodes and initializers, the bodies of If/Loop/Scan included."""
    for init in graph.initializer:
        index.constants.setdefault(init.name, _tensor_value(init))
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in STANDARD_DOMAINS:
            index.constants[node.output[0]] = _constant_value(node)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else
                        attr.graphs if attr.type == onnx.AttributeProto.GRAPHS else []):
                _record_constants(index, sub)


def walk_nodes(graph: onnx.GraphProto, path: str = "") -> Iterator[tuple[str, onnx.NodeProto]]:
    """Every node with a readable label, including the bodies of If/Loop/Scan."""
    for i, node in enumerate(graph.node):
        label = f"{path}{node.name or f'#{i}'}"
        yield label, node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from walk_nodes(attr.g, f"{label}/{attr.name}/")
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for j, sub in enumerate(attr.graphs):
                    yield from walk_nodes(sub, f"{label}/{attr.name}[{j}]/")

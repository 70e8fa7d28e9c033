"""Lint rules for custom-domain nodes: each must be one of our beam-search plugins, written the
way TensorRT's ONNX parser finds and builds a ``tensorrt.plugin`` (QDP) creator (TENSORRT.md
section 2): ``op_type`` = plugin name, attribute ``plugin_namespace`` = our namespace, every
registered attribute present on the node (the parser passes no defaults), INT attributes within
int32 (the parser truncates them), and ``plugin_version`` (the parser's creator version, "1"
when absent) the registered version."""

from __future__ import annotations

import onnx

from onerec_trt.lint.graph_index import STANDARD_DOMAINS, GraphIndex, walk_nodes
from onerec_trt.lint.optable import load_table

INT32_MAX = 2**31 - 1
NUMPY_NAMES = {"FLOAT": "float32", "FLOAT16": "float16", "BFLOAT16": "bfloat16",
               "DOUBLE": "float64", "INT64": "int64", "INT32": "int32", "INT8": "int8",
               "UINT8": "uint8", "BOOL": "bool", "FLOAT8E4M3FN": "float8_e4m3fn"}


DEFAULT_PLUGIN_VERSION = "1"  # what TensorRT's parser looks up when a node has no plugin_version


def plugin_specs() -> tuple[str, dict]:
    """(NAMESPACE, PLUGINS) from the plugin contract, imported lazily: it is another package's."""
    try:
        from onerec_trt.plugins.spec import NAMESPACE, PLUGINS
    except ImportError:
        return "", {}
    return NAMESPACE, PLUGINS


def registered_version() -> str:
    try:
        from onerec_trt.plugins.spec import PLUGIN_VERSION
    except ImportError:
        return DEFAULT_PLUGIN_VERSION
    return PLUGIN_VERSION


def graph_plugins(model: onnx.ModelProto) -> list[dict]:
    """The custom-domain ops of a graph: [{"name", "domain", "namespace", "version", "nodes"}],
    sorted; ``version`` is the node's ``plugin_version`` (the parser's default "1")."""
    found: dict[tuple[str, str, str, str], int] = {}
    for _, node in walk_nodes(model.graph):
        if node.domain in STANDARD_DOMAINS:
            continue
        namespace = _string_attribute(node, "plugin_namespace")
        version = _string_attribute(node, "plugin_version")
        key = (node.op_type, node.domain, namespace if namespace is not None else node.domain,
               version if version is not None else DEFAULT_PLUGIN_VERSION)
        found[key] = found.get(key, 0) + 1
    return [{"name": n, "domain": d, "namespace": ns, "version": v, "nodes": count}
            for (n, d, ns, v), count in sorted(found.items())]


def _string_attribute(node: onnx.NodeProto, name: str) -> str | None:
    for attr in node.attribute:
        if attr.name == name and attr.type == onnx.AttributeProto.STRING:
            return attr.s.decode()
    return None


def check_plugins(model: onnx.ModelProto, index: GraphIndex, out) -> None:
    namespace, plugins = plugin_specs()
    native = load_table().custom_domains
    known = ", ".join(f"{namespace}::{name}" for name in plugins) or "none"
    for label, node in walk_nodes(model.graph):
        if node.domain in STANDARD_DOMAINS:
            continue
        if node.op_type in native.get(node.domain, {}).get("ops", []):
            continue
        spec = plugins.get(node.op_type) if node.domain == namespace else None
        if spec is None:
            out.error("plugin", f"custom op {node.domain}::{node.op_type} matches no known "
                                f"plugin (known: {known})", label, node.op_type)
            continue
        _check_plugin_node(label, node, spec, namespace, index, out)


def _check_plugin_node(label, node, spec, namespace: str, index: GraphIndex, out) -> None:
    op = node.op_type
    found = _string_attribute(node, "plugin_namespace")
    if found != namespace:
        out.error("plugin", f"plugin_namespace is {found!r}, expected {namespace!r} (TensorRT's "
                            "parser looks the creator up by it)", label, op)
    attrs = {a.name: a for a in node.attribute}
    want = registered_version()
    if "plugin_version" in attrs:
        version = attrs["plugin_version"]
        got = version.s.decode() if version.type == onnx.AttributeProto.STRING else None
        if got != want:
            shown = repr(got) if got is not None else \
                f"of type {onnx.AttributeProto.AttributeType.Name(version.type)}"
            out.error("plugin", f"plugin_version is {shown}, the registered plugin is version "
                                f"{want!r} (TensorRT's parser looks the creator up by it; drop "
                                "the attribute or set it to the registered version)", label, op)
    for name in spec.attributes:
        if name not in attrs:
            out.error("plugin", f"attribute '{name}' is missing: TensorRT passes no defaults to "
                                f"a Python plugin ({spec.attributes[name]})", label, op)
        elif attrs[name].type == onnx.AttributeProto.INT and abs(attrs[name].i) > INT32_MAX:
            out.error("plugin", f"attribute '{name}' = {attrs[name].i} does not fit int32 (the "
                                "parser truncates INT attributes)", label, op)
    if len(node.input) != len(spec.inputs) or len(node.output) != len(spec.outputs):
        out.error("plugin", f"{len(node.input)} inputs / {len(node.output)} outputs, the plugin "
                            f"takes {len(spec.inputs)} / {len(spec.outputs)}", label, op)
        return
    for tensor, want in zip(node.input, spec.inputs, strict=True):
        got = NUMPY_NAMES.get(index.types.get(tensor, ""), None)
        if got is not None and got not in want.dtypes:
            out.error("plugin", f"input '{want.name}' ('{tensor}') is {got}, the plugin takes "
                                f"{'/'.join(want.dtypes)}", label, op)

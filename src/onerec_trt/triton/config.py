"""``config.pbtxt`` files: built as plain dicts, rendered to protobuf text format, and parsed back
with Triton's own ``model_config.proto`` (the ``model_config_pb2`` module that the
``tritonclient[grpc]`` wheel ships) to prove each file is a valid ``ModelConfig``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from onerec_trt.triton.contract import Contract, TensorSpec


class Ident(str):
    """An enum value (TYPE_INT64, KIND_GPU): rendered without quotes."""


@dataclass
class Batching:
    """Triton's dynamic batcher for one model.

    ``buckets`` (GPU repository only; empty: off): the only batch sizes the TensorRT engine is
    run at. Each bucket is a CUDA graph (``optimization.cuda.graph_spec``) whose
    ``graph_lower_bound`` is one above the previous bucket, so Triton's TensorRT backend pads
    any batch up to the next bucket, and the bucket sizes become the preferred batch sizes.
    Why: TensorRT 11.1/11.2.1 leak CUDA modules of AOT plugins on every input-shape change of
    an execution context, returning to an earlier shape included (NVIDIA/TensorRT#4849), and
    the dynamic batcher changes the batch size per request. One bucket (``[max_batch_size]``:
    every batch padded to the max) means no shape change at all; several buckets
    (``bucket_sizes`` makes powers of two) bound the set of shapes, not how often they change.
    """

    max_batch_size: int = 64
    preferred_batch_sizes: list[int] = field(default_factory=list)  # empty: largest batch
    queue_delay_us: int = 100  # how long a request may wait for others to join its batch
    buckets: list[int] = field(default_factory=list)

    def __post_init__(self):
        if self.buckets:
            check_buckets(self.buckets, self.max_batch_size)
            self.buckets = sorted(set(self.buckets))

    def to_config(self) -> dict:
        dyn: dict = {"max_queue_delay_microseconds": self.queue_delay_us}
        if self.preferred_batch_sizes:
            dyn = {"preferred_batch_size": list(self.preferred_batch_sizes), **dyn}
        return dyn


def bucket_sizes(max_batch: int) -> list[int]:
    """Powers of two up to ``max_batch``, and ``max_batch`` itself: 1, 2, 4, ..., max."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    sizes, size = [], 1
    while size < max_batch:
        sizes.append(size)
        size *= 2
    return [*sizes, max_batch]


def check_buckets(buckets: list[int], max_batch: int) -> None:
    """Every batch 1..max_batch must fall in a bucket: the largest bucket is max_batch."""
    if any(int(b) < 1 for b in buckets) or max(buckets) != max_batch:
        raise ValueError(f"batch buckets {sorted(set(buckets))} must be >= 1 and end at "
                         f"max_batch_size {max_batch}, so every batch has a bucket")


def graph_specs(buckets: list[int], inputs: tuple[TensorSpec, ...]) -> list[dict]:
    """One ``graph_spec`` per bucket, serving batches (previous bucket, bucket]."""
    shapes = [{"key": t.name, "value": {"dim": list(t.dims)}} for t in inputs]
    specs, low = [], 1
    for size in sorted(set(buckets)):
        spec: dict = {"batch_size": size, "input": shapes}
        if low < size:
            spec["graph_lower_bound"] = {"batch_size": low, "input": shapes}
        specs.append(spec)
        low = size + 1
    return specs


def render(config: dict, indent: int = 0) -> str:
    """Protobuf text format for a dict of scalars, Idents, dicts and lists (lists of dicts are
    repeated messages or map entries)."""
    pad = "  " * indent
    lines = []
    for key, value in config.items():
        if isinstance(value, dict):
            lines += [f"{pad}{key} {{", render(value, indent + 1), f"{pad}}}"]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                lines += [f"{pad}{key} {{", render(item, indent + 1), f"{pad}}}"]
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [ {', '.join(_scalar(v) for v in value)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return "\n".join(line for line in lines if line)


def _scalar(value) -> str:
    if isinstance(value, Ident):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # ASCII escapes are valid protobuf text-format escapes


def tensors(specs: tuple[TensorSpec, ...]) -> list[dict]:
    return [{"name": t.name, "data_type": Ident(t.triton_dtype), "dims": list(t.dims)}
            for t in specs]


def parameters(values: dict[str, object]) -> list[dict]:
    return [{"key": k, "value": {"string_value": str(v)}} for k, v in values.items()]


def python_model(name: str, contract: Contract, batching: Batching, instances: int,
                 params: dict[str, object], inputs=None, outputs=None) -> dict:
    """A python-backend model (``1/model.py``) on CPU instances."""
    return {
        "name": name, "backend": "python", "max_batch_size": batching.max_batch_size,
        "input": tensors(inputs or contract.inputs),
        "output": tensors(outputs or contract.outputs),
        "dynamic_batching": batching.to_config(),
        "instance_group": [{"kind": Ident("KIND_CPU"), "count": instances}],
        "parameters": parameters(params),
    }


def tensorrt_model(name: str, contract: Contract, batching: Batching, instances: int) -> dict:
    """A TensorRT engine (``1/model.plan``) on GPU instances; with ``batching.buckets``, run
    only at those batch sizes (see ``Batching``)."""
    config = {
        "name": name, "platform": "tensorrt_plan", "max_batch_size": batching.max_batch_size,
        "input": tensors(contract.inputs), "output": tensors(contract.outputs),
        "dynamic_batching": batching.to_config(),
        "instance_group": [{"kind": Ident("KIND_GPU"), "count": instances}],
        "default_model_filename": "model.plan",
    }
    if batching.buckets:
        config["dynamic_batching"] = {"preferred_batch_size": list(batching.buckets),
                                      "max_queue_delay_microseconds": batching.queue_delay_us}
        config["optimization"] = {"cuda": {"graphs": True, "graph_spec": graph_specs(
            batching.buckets, contract.inputs)}}
    return config


def ensemble(name: str, contract: Contract, max_batch_size: int,
             steps: list[tuple[str, dict[str, str], dict[str, str]]]) -> dict:
    """An ensemble; each step is (model, {step input: ensemble tensor}, {step output: tensor})."""
    return {
        "name": name, "platform": "ensemble", "max_batch_size": max_batch_size,
        "input": tensors(contract.inputs), "output": tensors(contract.outputs),
        "ensemble_scheduling": {"step": [
            {"model_name": model, "model_version": -1,
             "input_map": [{"key": k, "value": v} for k, v in ins.items()],
             "output_map": [{"key": k, "value": v} for k, v in outs.items()]}
            for model, ins, outs in steps]},
    }


def parse(text: str):
    """Parse ``config.pbtxt`` text into Triton's ``ModelConfig`` protobuf message.

    Raises ``ImportError`` where tritonclient is absent and ``ValueError`` on invalid text.
    """
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise ValueError(str(exc)) from None


def data_type_name(value: int) -> str:
    """The ModelConfig DataType enum value -> its name (TYPE_INT64)."""
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.DataType.Name(value)

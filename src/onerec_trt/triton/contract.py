"""The request/response contract every served model keeps, read from the export stage's
``export.json``: input ``history`` int64 [N, S] (model item ids, left-padded with 0), outputs
``items`` int64 [N, K], ``scores`` float32 [N, K], ``codes`` int64 [N, K, L].

Dims here leave out the batch axis N, as Triton's ``config.pbtxt`` does when
``max_batch_size > 0``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from onerec_trt.backends.metadata import normalize_dtype
from onerec_trt.errors import user_error
from onerec_trt.reports import Report

# numpy-style dtype names -> Triton's model configuration data types (model_config.proto).
TRITON_DTYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "int16": "TYPE_INT16",
    "int32": "TYPE_INT32", "int64": "TYPE_INT64", "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16", "float32": "TYPE_FP32", "float64": "TYPE_FP64",
}
@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy-style name, see TRITON_DTYPES
    dims: tuple[int, ...]  # without the batch axis

    @property
    def triton_dtype(self) -> str:
        return TRITON_DTYPES[self.dtype]


@dataclass(frozen=True)
class Contract:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    num_items: int  # valid item ids are 1..num_items; 0 is padding
    max_history: int  # S
    topk: int  # K
    levels: int  # L

    @classmethod
    def from_export(cls, meta: dict) -> Contract:
        """Read ``export.json`` (see ``onerec_trt.export``)."""
        try:
            inputs = tuple(_spec(name, shape) for name, shape in meta["inputs"].items())
            outputs = tuple(_spec(name, shape) for name, shape in meta["outputs"].items())
            return cls(inputs, outputs, int(meta["num_items"]), int(meta["history_length"]),
                       int(meta["options"]["topk"]), int(meta["levels"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise user_error(f"export.json lacks the interface ({exc!r})",
                             "re-run 'onerec-trt export' with this version") from None

    def to_json(self) -> dict:
        return {"inputs": [asdict(t) for t in self.inputs],
                "outputs": [asdict(t) for t in self.outputs],
                "num_items": self.num_items, "max_history": self.max_history,
                "topk": self.topk, "levels": self.levels, "padding_id": 0,
                "padding": "left (the last S items, zeros first)"}

    @classmethod
    def from_json(cls, data: dict) -> Contract:
        def specs(key):
            return tuple(TensorSpec(t["name"], t["dtype"], tuple(t["dims"])) for t in data[key])

        return cls(specs("inputs"), specs("outputs"), data["num_items"], data["max_history"],
                   data["topk"], data["levels"])


def _spec(name: str, shape: list) -> TensorSpec:
    """export.json writes ``name: ["N", dim, ..., dtype]``; the first entry is the batch axis."""
    *dims, dtype = shape
    return TensorSpec(name, normalize_dtype(dtype), tuple(int(d) for d in dims[1:]))


@dataclass
class RepositoryReport(Report):
    """``repository.json``: what a model repository serves and where it came from."""

    STAGE, FILE, COMMAND = "triton", "repository.json", "triton export"
    JSON_NAMES = {"loaded": "load"}

    format: int
    variant: str  # "cpu" (python backend + ONNX Runtime) or "gpu" (tensorrt_plan)
    public: dict[str, str]  # public model -> precision
    loaded: list[str]  # the models a server loads (the public ensembles)
    guard: str
    generate_models: dict  # precision -> {"model", "graph" or "engine", "sha256", ...}
    contract: dict  # Contract.to_json()
    batching: dict
    instances: int
    model: str
    model_sha256: str | None = None
    export: dict = field(default_factory=dict)  # the export options the graphs were made with

    def generate_model_of(self, public: str) -> str:
        """The generate model (the graph or engine) behind a public model's guard."""
        return self.generate_models[self.public[public]]["model"]

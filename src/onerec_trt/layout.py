"""Where every file of a run lives: the one place that names them.

A run folder holds one sub-folder per stage; each stage writes its files under fixed names and
a ``manifest.json`` (``artifacts.write_manifest``). Stages find each other's files through
``RunLayout`` and the names below, never through string literals of their own.

    runs/default/            RunLayout(root)
      eval.json  summary.md  manifest.json
      analysis/              report.md, report.json, exclusions.json, plots
      onnx/                  export: reference.{fp32,bf16,cpu}.onnx, export.json
      fp8/                   quantize: fp8.onnx, fp8.cpu.onnx, calibration.json,
                             quantize_report.json
      plugins/               plugins: <graph>.plugins.onnx, <graph>.plugins.cpu.onnx, plugins.json
      engines/               build: <graph>.plan + <graph>.json, timing.cache
      verify/                verify: verify.md, verify.json, outputs.json, inputs.json,
                             polygraphy_check.py
      triton/                triton export: a model repository, repository.json
      bench/                 bench: bench.json, bench.md, plots
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"

# export
FP32_GRAPH = "reference.fp32.onnx"  # the model in fp32: the graph's meaning
BF16_GRAPH = "reference.bf16.onnx"  # bf16 weights and activations, fp32 beam logic (TensorRT)
CPU_GRAPH = "reference.cpu.onnx"  # the bf16 graph rendered for ONNX Runtime's CPU provider
EXPORT_JSON = "export.json"
# quantize
FP8_GRAPH = "fp8.onnx"
FP8_CPU_GRAPH = "fp8.cpu.onnx"
CALIBRATION_JSON = "calibration.json"
QUANTIZE_REPORT = "quantize_report.json"
SEARCH_MD = "search.md"  # quantize --search: the candidates tried
# plugins: source graph -> plugin-bearing graph
PLUGIN_GRAPHS = {
    BF16_GRAPH: "reference.plugins.onnx",
    CPU_GRAPH: "reference.plugins.cpu.onnx",
    FP8_GRAPH: "fp8.plugins.onnx",
    FP8_CPU_GRAPH: "fp8.plugins.cpu.onnx",
}
PLUGINS_JSON = "plugins.json"
# build
TIMING_CACHE = "timing.cache"
# verify
VERIFY_JSON, VERIFY_MD = "verify.json", "verify.md"
# run
EVAL_JSON, SUMMARY_MD = "eval.json", "summary.md"


@dataclass(frozen=True)
class RunLayout:
    """The folders of one run (``onerec-trt run --out ROOT``)."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def analysis(self) -> Path:
        return self.root / "analysis"

    @property
    def onnx(self) -> Path:
        return self.root / "onnx"

    @property
    def fp8(self) -> Path:
        return self.root / "fp8"

    @property
    def plugins(self) -> Path:
        return self.root / "plugins"

    @property
    def engines(self) -> Path:
        return self.root / "engines"

    @property
    def verify(self) -> Path:
        return self.root / "verify"

    @property
    def triton(self) -> Path:
        return self.root / "triton"

    @property
    def bench(self) -> Path:
        return self.root / "bench"

    @property
    def eval_json(self) -> Path:
        return self.root / EVAL_JSON

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY_MD


DEFAULT_RUN = RunLayout("runs/default")  # where the stages look when not told otherwise

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
# --model names of the shipped models: the default (OneRec-V2 style) and a Qwen3 LM
SHIPPED_MODELS = {"default": SHIPPED_DIR / "ml-1m-small", "qwen3-ml1m": SHIPPED_DIR / "qwen3-ml1m"}
TRAINING_JSON = "training.json"  # a model folder's training record (model/checkpoint.py)

"""onerec-trt: a TensorRT FP8 compilation backend for OneRec-V2-style generative recommenders.

The pipeline as Python (docs/api.md): each stage is a function taking its options dataclass,
writing its folder and returning its report, exactly what the CLI runs::

    from onerec_trt import ExportOptions, QuantizeOptions, export, quantize
    export(ExportOptions(out="run/onnx"))
    quantize(QuantizeOptions(onnx="run/onnx", out="run/fp8"))

The names below are imported when first used, so ``import onerec_trt`` and ``onerec-trt
--help`` stay fast. Stages log through ``logging`` (``onerec_trt.<stage>``): nothing is
printed unless logging is configured (``logging.basicConfig(level=logging.INFO)``).
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

# public name -> the module that defines it, in pipeline order
_API = {
    **dict.fromkeys(("train", "TrainOptions"), "onerec_trt.model.train.stage"),
    **dict.fromkeys(("init", "InitOptions"), "onerec_trt.model.init.stage"),
    **dict.fromkeys(("import_checkpoint", "ImportOptions"), "onerec_trt.model.hf_import.stage"),
    "load_model": "onerec_trt.model.checkpoint",
    **dict.fromkeys(("evaluate", "EvalOptions", "EvalReport"), "onerec_trt.evaluate"),
    **dict.fromkeys(("analyze", "AnalyzeOptions", "AnalysisReport"), "onerec_trt.analysis"),
    **dict.fromkeys(("export", "ExportOptions", "ExportReport"), "onerec_trt.export"),
    **dict.fromkeys(("quantize", "QuantizeOptions", "QuantizeReport"), "onerec_trt.quantize"),
    **dict.fromkeys(("plugins", "PluginsOptions", "PluginsReport"), "onerec_trt.plugins"),
    **dict.fromkeys(("lint", "LintReport"), "onerec_trt.lint"),
    **dict.fromkeys(("Backend", "OrtBackend", "TrtBackend", "TorchBackend", "HfOracle"),
                    "onerec_trt.backends"),
    **dict.fromkeys(("build", "BuildOptions", "BuildReport"), "onerec_trt.builder"),
    **dict.fromkeys(("verify", "VerifyOptions", "VerifyReport", "Gates"), "onerec_trt.verify"),
    **dict.fromkeys(("export_repository", "RepositoryOptions"), "onerec_trt.triton.repository"),
    "RepositoryReport": "onerec_trt.triton.contract",
    **dict.fromkeys(("bench", "BenchOptions", "BenchReport"), "onerec_trt.bench"),
    **dict.fromkeys(("run", "RunOptions"), "onerec_trt.run"),
    "UserError": "onerec_trt.errors",
}
_ALIASES = {"train": "train_stage", "init": "init_stage"}  # public name -> name in its module

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'onerec_trt' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), _ALIASES.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


class _Package(types.ModuleType):
    """Several stages share their name with their package (``export``, ``quantize``,
    ``run``...): importing ``onerec_trt.export`` would make ``onerec_trt.export`` the package.
    Here the public name stays the stage function (the package is in ``sys.modules``, where
    ``from onerec_trt.export import ExportOptions`` finds it)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

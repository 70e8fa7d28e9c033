"""The only part of the build that needs TensorRT: parse, configure, build (TENSORRT.md section
5). Written against the documented Python API of TensorRT 10.x/11.x; this project's machines
cannot install TensorRT, so this module has never run here (docs/tensorrt.md)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from onerec_trt.builder import DEFAULT_PLUGIN_MODULE
from onerec_trt.builder.jobs import EngineJob
from onerec_trt.engines.metadata import parse_version
from onerec_trt.engines.tensorrt_lib import import_tensorrt, load_plugin_module
from onerec_trt.errors import user_error


@dataclass
class BuildSettings:
    opt_level: int = 3  # builder optimization level 0-5 (TensorRT's default is 3)
    workspace_bytes: int | None = None  # None: TensorRT's default (the device's memory)
    timing_cache: bytes = b""  # reused across builds; the updated cache comes back
    plugin_modules: list[str] = field(default_factory=lambda: [DEFAULT_PLUGIN_MODULE])
    plugin_libraries: list[str] = field(default_factory=list)


@dataclass
class BuiltEngine:
    plan: bytes
    timing_cache: bytes
    tensorrt_version: str
    inputs: dict[str, tuple[list[int], str]]  # as TensorRT's network sees them (-1: dynamic)
    outputs: dict[str, tuple[list[int], str]]
    seconds: float
    network_flags: list[str]


def network_flags(trt, with_plugins: bool) -> tuple[int, list[str]]:
    """TensorRT 11 networks are always strongly typed; 10.x needs the STRONGLY_TYPED flag.
    Plugin graphs prefer ahead-of-time plugins, so the engine needs no Python to run."""
    flags, names = 0, []
    enum = trt.NetworkDefinitionCreationFlag
    if parse_version(trt.__version__)[0] < 11:
        flags |= 1 << int(enum.STRONGLY_TYPED)
        names.append("STRONGLY_TYPED")
    if with_plugins and hasattr(enum, "PREFER_AOT_PYTHON_PLUGINS"):
        flags |= 1 << int(enum.PREFER_AOT_PYTHON_PLUGINS)
        names.append("PREFER_AOT_PYTHON_PLUGINS")
    return flags, names


def register_plugins(trt, job: EngineJob, settings: BuildSettings) -> None:
    """Load plugin libraries and import the modules that register our Python plugins, then
    check the registry has a creator for every plugin op of the graph (before parsing)."""
    if not job.plugins:
        return
    registry = trt.get_plugin_registry()
    for library in settings.plugin_libraries:
        registry.load_library(str(library))
    for module in settings.plugin_modules:
        try:
            load_plugin_module(module)
        except (ImportError, AttributeError) as exc:
            raise user_error(f"{job.onnx} has plugin nodes; loading their TensorRT "
                             f"registration {module} failed: {exc}",
                             "pass --plugin-module MODULE[:FUNCTION] or --plugin-library") \
                from None
    for plugin in job.plugins:
        if registry.get_creator(plugin["name"], plugin["version"], plugin["namespace"]) is None:
            raise user_error(f"no TensorRT plugin creator {plugin['namespace']}::"
                             f"{plugin['name']} (version {plugin['version']}) is registered",
                             f"imported {settings.plugin_modules}, loaded "
                             f"{settings.plugin_libraries}")


def _parse(trt, network, logger, job: EngineJob):
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(job.onnx)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        first = errors[0].splitlines()[0] if errors else "no detail"
        raise user_error(f"TensorRT's ONNX parser rejected {job.onnx}: {first}",
                         f"{len(errors)} parser error(s); 'onerec-trt lint' checks a graph "
                         "without TensorRT")
    return parser


def _configure(trt, builder, job: EngineJob, settings: BuildSettings, log):
    config = builder.create_builder_config()
    config.builder_optimization_level = settings.opt_level
    if settings.workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in job.profile.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(settings.timing_cache)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        log("  timing cache does not match this GPU/TensorRT: starting from an empty one")
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    return config


def _tensors(count: int, get) -> dict[str, tuple[list[int], str]]:
    out = {}
    for i in range(count):
        tensor = get(i)
        out[tensor.name] = (list(tensor.shape), tensor.dtype.name)
    return out


def build_engine(job: EngineJob, settings: BuildSettings, log=print) -> BuiltEngine:
    trt = import_tensorrt()
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags, flag_names = network_flags(trt, bool(job.plugins))
    network = builder.create_network(flags)
    register_plugins(trt, job, settings)
    parser = _parse(trt, network, logger, job)  # noqa: F841 (kept alive with the network)
    config = _configure(trt, builder, job, settings, log)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise user_error(f"TensorRT could not build an engine from {job.onnx}",
                         "its log above says why")
    return BuiltEngine(
        plan=bytes(plan), timing_cache=bytes(config.get_timing_cache().serialize()),
        tensorrt_version=trt.__version__,
        inputs=_tensors(network.num_inputs, network.get_input),
        outputs=_tensors(network.num_outputs, network.get_output),
        seconds=time.perf_counter() - t0, network_flags=flag_names)

"""The only part of the build that needs TensorRT: parse, configure, build (TENSORRT.md section
5). Written against the documented Python API of TensorRT 10.x/11.x; this project's machines
cannot install TensorRT, so this module has never run here (docs/tensorrt.md)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from onerec_trt.backends.metadata import parse_version
from onerec_trt.backends.tensorrt_lib import (
    import_tensorrt,
    load_libraries,
    load_plugin_module,
    version_notes,
)
from onerec_trt.builder import DEFAULT_PLUGIN_MODULE
from onerec_trt.builder.jobs import EngineJob
from onerec_trt.errors import user_error

log = logging.getLogger(__name__)


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


def register_plugins(trt, job: EngineJob, settings: BuildSettings) -> list:
    """Load plugin libraries and import the modules that register our Python plugins, then
    check the registry has a creator for every plugin op of the graph (before parsing).
    Returns the library handles (kept alive for the build)."""
    if not job.plugins:
        return []
    registry = trt.get_plugin_registry()
    handles = load_libraries(registry, settings.plugin_libraries, str(job.onnx))
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
    record_plugin_arch(job.plugins, plugin_arch())
    return handles


def plugin_arch() -> int | None:
    """The compute capability our registered plugins compile their PTX for (None when our
    registration was not imported, e.g. only --plugin-library)."""
    from onerec_trt.plugins.tensorrt_plugins import registered_arch

    return registered_arch()


def record_plugin_arch(plugins: list[dict], arch: int | None) -> None:
    """Write the PTX target into the metadata's plugin entries (our namespace only), so a
    loader can refuse a GPU the embedded kernels cannot load on."""
    from onerec_trt.plugins.aot import ptx_target
    from onerec_trt.plugins.spec import NAMESPACE

    if arch is None:
        return
    for plugin in plugins:
        if plugin.get("namespace") == NAMESPACE:
            plugin["ptx_arch"] = arch
            plugin["ptx_target"] = ptx_target(arch)


def _parse(trt, network, logger, job: EngineJob):
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(job.onnx)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        first = errors[0].splitlines()[0] if errors else "no detail"
        raise user_error(f"TensorRT's ONNX parser rejected {job.onnx}: {first}",
                         f"{len(errors)} parser error(s); 'onerec-trt lint' checks a graph "
                         "without TensorRT")
    return parser


def _configure(trt, builder, job: EngineJob, settings: BuildSettings):
    config = builder.create_builder_config()
    config.builder_optimization_level = settings.opt_level
    if settings.workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in job.profile.items():
        profile.set_shape(name, lo, opt, hi)
    add_profile(config, profile, job)
    apply_timing_cache(config, settings.timing_cache)
    return config


def add_profile(config, profile, job: EngineJob) -> int:
    """``add_optimization_profile`` returns the profile's index, -1 when TensorRT refuses it."""
    index = config.add_optimization_profile(profile)
    if index is None or index < 0:
        raise user_error(f"TensorRT refused the optimization profile of {job.onnx}: "
                         f"{ {n: list(s) for n, s in job.profile.items()} }",
                         "check --min-batch/--opt-batch/--max-batch against the graph's inputs")
    return index


def apply_timing_cache(config, blob: bytes) -> bool:
    """Give the builder config a timing cache: ``blob`` when TensorRT accepts it, else an empty
    one. ``create_timing_cache`` returns None for a corrupt or stale blob and
    ``set_timing_cache`` False for one of another GPU/TensorRT; both fall back to an empty
    cache with a note. Returns whether ``blob`` was used."""
    if blob:
        cache = config.create_timing_cache(blob)
        if cache is None:
            log.info("  timing cache could not be read (corrupt, or written by another "
                     "TensorRT): starting from an empty one")
        elif config.set_timing_cache(cache, ignore_mismatch=False):
            return True
        else:
            log.info("  timing cache does not match this GPU/TensorRT: starting from an empty "
                     "one")
    empty = config.create_timing_cache(b"")
    if empty is None or not config.set_timing_cache(empty, ignore_mismatch=False):
        raise user_error("TensorRT could not create an empty timing cache",
                         "its log above says why")
    return False


def _tensors(count: int, get) -> dict[str, tuple[list[int], str]]:
    out = {}
    for i in range(count):
        tensor = get(i)
        out[tensor.name] = (list(tensor.shape), tensor.dtype.name)
    return out


def build_engine(job: EngineJob, settings: BuildSettings) -> BuiltEngine:
    trt = import_tensorrt()
    for note in version_notes(trt.__version__):
        log.warning(f"  warning: {note}")
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags, flag_names = network_flags(trt, bool(job.plugins))
    network = builder.create_network(flags)
    libraries = register_plugins(trt, job, settings)  # noqa: F841 (alive for the build)
    parser = _parse(trt, network, logger, job)  # noqa: F841 (kept alive with the network)
    config = _configure(trt, builder, job, settings)
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

"""``Backend``: what computes a request, the one small interface verify and bench share.

A backend is made cheaply (its constructor runs every check that needs no heavy library:
file present, same model, metadata) and loads what it runs only when opened. ``runner(role)``
is a fresh Polygraphy runner for verify's ``Comparator``; ``open``/``run``/``close`` run it
directly (bench's workers). Backends pickle unopened, so bench can send one to its worker
process. The kinds: ``ort_backend.OrtBackend``, ``trt_backend.TrtBackend``,
``torch_backend.TorchBackend``, ``hf_oracle.HfOracle``; this module imports none of them.
"""

from __future__ import annotations

import numpy as np

from onerec_trt.artifacts import package_versions

KINDS = ("torch", "ort", "trt", "hf")
OUTPUTS = ["items", "scores", "codes"]  # what every generation backend returns


class Backend:
    """The shared interface. Subclasses set the attributes and implement ``_make_runner``."""

    kind: str  # one of KINDS
    name: str  # what reports call it: the graph or plan path, torch:bf16, hf
    precision: str | None  # fp32 | bf16 | fp8; None: as the graph computes (not declared)
    inputs: list[str]
    outputs: list[str]
    export = None  # ExportReport of the export that made the graph or engine (None: unknown)
    path = None  # the graph or plan file (None: a model folder's loop)
    takes_request = False  # True: beam and top-K are the caller's (``for_request``)

    _runner = None  # the opened runner (``open``)

    # ---- the request a backend answers -------------------------------------------------------

    def for_request(self, beam: int, topk: int) -> None:
        """Set the beam width and top-K where the backend does not fix them (a graph or plan
        does; the torch loop and the oracle take them)."""

    @property
    def request(self) -> tuple[int | None, int | None]:
        """(beam, top-K) this backend answers with, from its export where it has one."""
        return (self.export.beam, self.export.topk) if self.export else (None, None)

    def recorded_model(self) -> str | None:
        """The hash of the model the graph or engine was made from, where it is recorded."""
        return None

    def check_model(self, model_sha: str | None, what: str) -> None:
        """A user error when the graph or engine was made from another model than
        ``model_sha``'s (both known)."""
        from onerec_trt.provenance import check_same_model

        fix = "export, quantize and build this model first" if self.kind == "trt" else \
            "export and quantize this model first"
        check_same_model(self.recorded_model(), model_sha, what, fix,
                         artifact=getattr(self, "path", None))

    # ---- running it --------------------------------------------------------------------------

    def runner(self, role: str = "backend"):
        """A fresh Polygraphy runner (not activated), named ``role:<what>``."""
        return self._make_runner(f"{role}:{self.label}")

    def _make_runner(self, name: str):
        raise NotImplementedError

    @property
    def label(self) -> str:
        """The short name inside a runner's name: a file's name, else ``name``."""
        return self.path.name if self.path is not None else self.name

    def open(self) -> Backend:
        """Load what the backend runs (once)."""
        if self._runner is None:
            runner = self.runner()
            runner.activate()
            self._runner = runner
        return self

    def run(self, histories: np.ndarray) -> dict[str, np.ndarray]:
        """``items``, ``scores`` (and ``codes``) for int64 histories [N, S]; opens first."""
        self.open()
        out = self._runner.infer({"history": histories})
        return {name: np.asarray(value) for name, value in out.items()}

    def close(self) -> None:
        if self._runner is not None:
            self._runner.deactivate()
            self._runner = None

    def __enter__(self) -> Backend:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        """Pickled unopened (bench sends a backend to its worker process)."""
        return {**self.__dict__, "_runner": None}

    # ---- what reports say about it -----------------------------------------------------------

    def describe(self, role: str = "backend") -> dict:
        """verify.json's description of the backend in ``role``."""
        versions = package_versions()
        return {"spec": self.name, "kind": self.kind, "runner": f"{role}:{self.label}",
                "backend": self.library(), "polygraphy": versions.get("polygraphy")}

    def library(self) -> str:
        """The library that computes, with its version."""
        raise NotImplementedError

    def info(self) -> dict:
        """bench.json's ``info`` of an opened backend (versions, device, threads)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class LoopBackend(Backend):
    """A model folder's generation loop (the torch loop, the hf oracle): beam and top-K are
    the caller's, given at construction or set later by ``for_request``; ``threads``: torch's
    intra-op threads when its runner is made (None: leave them)."""

    takes_request = True
    beam: int | None = None
    topk: int | None = None
    threads: int | None = None
    needs_request: str | None = None  # what a missing beam/top-K error calls it (None: name)

    def for_request(self, beam: int, topk: int) -> None:
        self.beam, self.topk = self.beam or beam, self.topk or topk

    @property
    def request(self) -> tuple[int | None, int | None]:
        return self.beam, self.topk

    def _prepare_loop(self) -> None:
        """Before a runner is made: the request must be known; torch gets its threads."""
        from onerec_trt.errors import user_error

        if not self.beam or not self.topk:
            raise user_error(f"{self.needs_request or self.name} needs a beam width and top-K",
                             f"{type(self).__name__}(..., beam=B, topk=K), or an exported "
                             "reference graph")
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)


def version_of(name: str) -> str | None:
    import importlib.metadata as md

    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None

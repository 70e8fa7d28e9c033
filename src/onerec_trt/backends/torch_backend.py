"""``TorchBackend``: the project's torch generation loop on a model folder, fp32 or bf16."""

from __future__ import annotations

from onerec_trt.artifacts import package_versions
from onerec_trt.backends.backend import OUTPUTS, LoopBackend
from onerec_trt.errors import user_error

DTYPES = ("fp32", "bf16")


class TorchBackend(LoopBackend):
    """``model``: a model folder or shipped name; ``dtype``: fp32 or bf16. ``beam``/``topk``:
    the request (None: set later with ``for_request``, e.g. verify takes the reference
    graph's); ``threads``: torch's intra-op threads when opened (None: leave them)."""

    kind = "torch"

    def __init__(self, model: str = "default", dtype: str = "fp32", *, beam: int | None = None,
                 topk: int | None = None, device: str = "cpu", threads: int | None = None,
                 name: str | None = None):
        if dtype not in DTYPES:
            raise user_error(f"the torch loop runs fp32 or bf16, not {dtype!r}")
        self.model, self.precision, self.beam, self.topk = model, dtype, beam, topk
        self.device, self.threads = device, threads
        self.name = name or f"torch:{dtype}"
        self.inputs, self.outputs = ["history"], list(OUTPUTS)

    def _make_runner(self, name: str):
        from onerec_trt.backends.torch_runner import TorchGenerationRunner

        self._prepare_loop()
        return TorchGenerationRunner(self.model, self.beam, self.topk, self.precision,
                                     device=self.device, name=name)

    def library(self) -> str:
        return f"torch {package_versions().get('torch')} (the generation loop)"

    def info(self) -> dict:
        import torch

        return {"torch": torch.__version__, "device": str(self._runner.device),
                "threads": torch.get_num_threads()}

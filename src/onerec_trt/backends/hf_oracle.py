"""``HfOracle``: transformers' own ``generate`` with the catalogue trie as
``prefix_allowed_tokens_fn`` on an imported model (fp32, CPU): the oracle written outside this
project."""

from __future__ import annotations

from onerec_trt.backends.backend import OUTPUTS, LoopBackend, version_of


class HfOracle(LoopBackend):
    """``model``: a folder made by ``onerec-trt import``. ``batch``: users per ``generate``
    call (1: one unpadded prompt at a time, verify's oracle; None: the whole request,
    left-padded, as bench times it)."""

    kind = "hf"
    precision = "fp32"
    needs_request = "the hf oracle"

    def __init__(self, model: str = "default", *, beam: int | None = None,
                 topk: int | None = None, batch: int | None = 1, threads: int | None = None,
                 name: str = "hf"):
        self.model, self.beam, self.topk, self.batch, self.threads = model, beam, topk, batch, \
            threads
        self.name = name
        self.inputs, self.outputs = ["history"], list(OUTPUTS)

    def _make_runner(self, name: str):
        from onerec_trt.backends.hf_runner import TransformersGenerateRunner

        self._prepare_loop()
        return TransformersGenerateRunner(self.model, self.beam, self.topk, name=name,
                                          batch=self.batch)

    def library(self) -> str:
        return f"transformers {version_of('transformers')} generate (fp32, CPU)"

    def info(self) -> dict:
        import torch
        import transformers

        return {"transformers": transformers.__version__, "torch": torch.__version__,
                "device": "cpu", "threads": torch.get_num_threads()}

"""The plugins as beam steps of the one generation loop (``model.generate``, steps ``plugin`` and
``triton-lang``): the plugin graph's meaning with a model in torch.

``PluginStep`` runs the plugin ops written in torch (``torch_ops``, CPU or GPU);
``TritonLangStep`` the OpenAI Triton kernels (GPU, or the CPU interpreter with
TRITON_INTERPRET=1). Both read the packed trie and neither synchronises with the host except
the torch ops' data-dependent gathers.
"""

from __future__ import annotations

import torch
from torch import nn

from onerec_trt.model.trie import Trie
from onerec_trt.plugins.packed import PackedTrie


class PluginStep(nn.Module):
    """TrieBeamStep (= TrieBeamSelect(TrieBeamExpand(...))) on the packed trie."""

    def __init__(self, trie: Trie | PackedTrie):
        super().__init__()
        packed = trie if isinstance(trie, PackedTrie) else PackedTrie.from_trie(trie)
        for name, values in packed.arrays().items():
            if name != "leaf_item":
                self.register_buffer(name, torch.as_tensor(values))

    def ops(self):
        from onerec_trt.plugins import torch_ops

        return torch_ops

    def forward(self, logits, scores, node, t: int, beam: int):
        return self.ops().trie_beam_step(logits, scores, node, self.indptr, self.child_code,
                                         self.offsets, t, beam)


class TritonLangStep(PluginStep):
    """The same step on the OpenAI Triton kernels (``plugins.kernels``)."""

    def ops(self):
        from onerec_trt.plugins import kernels

        return kernels

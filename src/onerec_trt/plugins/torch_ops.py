"""The plugin ops written in torch (CPU or GPU): their meaning, which every other rendering
(ONNX Runtime custom ops, Triton kernels, TensorRT plugins) matches.

``trie_beam_step`` is written with the same torch ops, in the same order, as one step of
``model.generate.beam_search`` (log_softmax in fp32, ``scores + logp.masked_fill(...)``, a stable
descending sort), so a loop of it reproduces the reference generation bit for bit.
``trie_beam_expand`` and ``trie_beam_select`` are its two stages (see ``spec.py``); their
composition equals ``trie_beam_step`` exactly. All take the packed trie (``packed.py``) as
tensors ``indptr, child_code, offsets``.
"""

from __future__ import annotations

import torch

INT32_MIN = -(2 ** 31)
LOW32 = 0xFFFFFFFF
SENTINEL = torch.iinfo(torch.int64).max


def encode_keys(values: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """float32 values + int flat indices -> int64 keys whose ascending order is (value
    descending, flat ascending); -0.0 is keyed as +0.0."""
    bits = values.float().contiguous().view(torch.int32)
    bits = torch.where(bits == INT32_MIN, torch.zeros_like(bits), bits)
    asc = torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)
    desc = (~asc).long()
    return (desc << 32) | flat.long()


def decode_keys(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 keys -> (float32 values, int64 flat indices)."""
    asc = ~(keys >> 32).to(torch.int32)
    bits = torch.where(asc >= 0, asc, asc ^ 0x7FFFFFFF)
    return bits.view(torch.float32), keys & LOW32


def step_children(node: torch.Tensor, indptr: torch.Tensor, child_code: torch.Tensor,
                  offsets: torch.Tensor, step: int, vocab: int) -> torch.Tensor:
    """Dense next-node table rows of the beams: [*node.shape, V] child node id or -1.
    Node ids outside [0, nodes_t) have no children."""
    ip0, ip1 = int(offsets[0, step]), int(offsets[0, step + 1])
    cc0 = int(offsets[1, step])
    ptr = indptr[ip0:ip1]
    nodes_t = ip1 - ip0 - 1
    flat_node = node.reshape(-1)
    ok = (flat_node >= 0) & (flat_node < nodes_t)
    safe = torch.where(ok, flat_node, torch.zeros_like(flat_node))
    start, end = ptr[safe], ptr[safe + 1]
    count = torch.where(ok, end - start, torch.zeros_like(start))
    rows = torch.repeat_interleave(torch.arange(len(flat_node), device=node.device), count)
    first = torch.cumsum(count, 0) - count
    pos = torch.arange(int(count.sum()), device=node.device) - first[rows] + start[rows]
    table = torch.full((len(flat_node), vocab), -1, dtype=torch.long, device=node.device)
    table[rows, child_code[cc0 + pos]] = pos
    return table.reshape(*node.shape, vocab)


def _candidates(logits, scores, node, indptr, child_code, offsets, step):
    vocab = logits.shape[-1]
    logp = torch.log_softmax(logits.float(), dim=-1)  # [N, B, V]
    child = step_children(node, indptr, child_code, offsets, step, vocab)
    cand = scores.unsqueeze(-1) + logp.masked_fill(child < 0, float("-inf"))
    return cand, child


def trie_beam_step(logits, scores, node, indptr, child_code, offsets, step: int,
                   beam_out: int):
    """-> (new_scores [N, B'], parent, code, next_node) int64 indices; see spec.TRIE_BEAM_STEP."""
    n, beam, vocab = logits.shape
    cand, child = _candidates(logits, scores, node, indptr, child_code, offsets, step)
    values, flat = torch.sort(cand.reshape(n, beam * vocab), dim=-1, descending=True,
                              stable=True)
    values, flat = values[:, :beam_out], flat[:, :beam_out]
    next_node = child.reshape(n, beam * vocab).gather(1, flat).clamp_min(0)
    return values, flat // vocab, flat % vocab, next_node


def trie_beam_expand(logits, scores, node, indptr, child_code, offsets, step: int,
                     beam_out: int) -> torch.Tensor:
    """-> cand [N, B, KC] int64: each beam's KC = min(B', V) smallest candidate keys, ascending."""
    n, beam, vocab = logits.shape
    cand, _ = _candidates(logits, scores, node, indptr, child_code, offsets, step)
    flat = torch.arange(beam * vocab, device=logits.device).reshape(1, beam, vocab)
    keys = encode_keys(cand, flat.expand(n, -1, -1))
    return torch.topk(keys, min(beam_out, vocab), dim=-1, largest=False, sorted=True).values


def trie_beam_select(cand, node, indptr, child_code, offsets, step: int, beam_out: int,
                     vocab: int):
    """-> (new_scores [N, B'], parent, code, next_node): the B' smallest keys of all lists."""
    n = cand.shape[0]
    keys = torch.topk(cand.reshape(n, -1), beam_out, dim=-1, largest=False, sorted=True).values
    values, flat = decode_keys(keys)
    parent, code = flat // vocab, flat % vocab
    rows = step_children(node.gather(1, parent), indptr, child_code, offsets, step, vocab)
    next_node = rows.gather(2, code.unsqueeze(-1)).squeeze(-1).clamp_min(0)
    return values, parent, code, next_node


def codes_to_item(codes, indptr, child_code, offsets, leaf_item) -> torch.Tensor:
    """codes [N, K, L] -> items [N, K]: walk the trie; -1 where no item has the codes."""
    shape, levels = codes.shape[:-1], codes.shape[-1]
    flat = codes.reshape(-1, levels)
    node = torch.zeros(len(flat), dtype=torch.long, device=codes.device)
    alive = torch.ones(len(flat), dtype=torch.bool, device=codes.device)
    for t in range(levels):
        ip0, cc0 = int(offsets[0, t]), int(offsets[1, t])
        start, end = indptr[ip0 + node], indptr[ip0 + node + 1]
        codes_t = child_code[cc0: int(offsets[1, t + 1])]
        pos = _search_rows(codes_t, start, end, flat[:, t])
        alive &= pos >= 0
        node = torch.where(alive, pos, torch.zeros_like(pos))
    items = torch.where(alive, leaf_item[node], torch.full_like(node, -1))
    return items.reshape(shape)


def _search_rows(codes: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
                 target: torch.Tensor) -> torch.Tensor:
    """Position of ``target`` in ``codes[start:end]`` (ascending) per row, or -1."""
    if len(codes) == 0 or len(start) == 0:
        return torch.full_like(start, -1)
    lo, hi = start.clone(), end.clone()
    top = len(codes) - 1
    for _ in range(int((end - start).max()).bit_length() + 1):
        active = lo < hi
        mid = (lo + hi) // 2
        right = active & (codes[mid.clamp(0, top)] < target)
        lo = torch.where(right, mid + 1, lo)
        hi = torch.where(active & ~right, mid, hi)
    found = (lo < end) & (codes[lo.clamp(0, top)] == target)
    return torch.where(found, lo, torch.full_like(lo, -1))

"""Triton kernels of the plugins (``@triton.jit``), and torch launchers for them.

One kernel per plugin (a TensorRT AOT plugin launches exactly one), each with the parameter
order TensorRT's AOT launcher uses: input pointers, int32 scalars, output pointers, then
compile-time constants (``aot.py`` compiles the same functions to PTX).

- ``_expand_kernel`` (TrieBeamExpand), grid (N, B): the beam's log-normalizer over V (two
  passes: max, then sum of exp), its children's scores (CSR gather, in code order), the KC
  best of them (all, or a bisection on the value part when there are more: ``_keep_best``),
  sorted by rank (``_rank_sort``), then -inf keys for the first codes that are not finite
  children (the r-th such code is r + #{j : s_j - j <= r}, s the finite codes ascending: a
  histogram and a prefix sum).
- ``_select_kernel`` (TrieBeamSelect), grid (N,): bisection on the value part of the keys over
  the B sorted lists (a binary search per list per probe), ties at the threshold taken in beam
  order, then the chosen keys are ranked and decoded. The ``parent`` output row is its scratch
  space before the final values are written.
- ``_codes_to_item_kernel`` (CodesToItem): a binary search per level per code tuple.

No ``tl.sort``: its bitonic network is slow in the interpreter, and a rank sort of at most
B' keys in [KP, RB] blocks is cheap on a GPU.

Set ``TRITON_INTERPRET=1`` before importing triton to run them on the CPU (tests do).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from onerec_trt.plugins.spec import MAX_BEAM_OUT, candidates_per_beam, next_pow2

SENT = tl.constexpr(9223372036854775807)  # int64 max: "no candidate"
LOW32 = tl.constexpr(4294967295)
CODE_SEARCH_STEPS = 32  # a binary search over any int32 range
NUM_WARPS = {"expand": 8, "select": 8, "codes": 4}


@triton.jit
def _desc_key(val, flat):
    """(float32 value, flat index) -> int64 key, ascending = value descending, flat ascending."""
    bits = val.to(tl.int32, bitcast=True)
    bits = tl.where(bits == -2147483648, 0, bits)  # -0.0 keyed as +0.0
    asc = tl.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)
    return ((~asc).to(tl.int64) << 32) | flat.to(tl.int64)


@triton.jit
def _decode_key(key):
    asc = ~((key >> 32).to(tl.int32))
    bits = tl.where(asc >= 0, asc, asc ^ 0x7FFFFFFF)
    return bits.to(tl.float32, bitcast=True), key & LOW32


@triton.jit
def _rank_sort(row, S, KP: tl.constexpr, RB: tl.constexpr):
    """Sort the S (<= KP) unique keys at ``row[0:S]`` ascending, in place: each key's rank is
    the number of smaller keys (compared RB at a time), then every key is stored at its rank.
    Returns (keys, rank) as [KP] blocks (SENT beyond S)."""
    tl.debug_barrier()  # the keys were stored by other threads
    ar = tl.arange(0, KP)
    keys = tl.load(row + ar, mask=ar < S, other=SENT)
    rank = tl.zeros([KP], tl.int32)
    rb = tl.arange(0, RB)
    for j0 in range(0, S, RB):
        other = tl.load(row + j0 + rb, mask=j0 + rb < S, other=SENT)
        rank += tl.sum((other[None, :] < keys[:, None]).to(tl.int32), axis=1)
    tl.debug_barrier()
    return keys, rank


@triton.jit
def _search(codes, start, end, target, STEPS: tl.constexpr):
    """Per lane: position of ``target`` in ascending ``codes[start:end]``, or -1."""
    lo = start
    hi = end
    for _ in tl.static_range(STEPS):
        active = lo < hi
        mid = (lo + hi) // 2
        x = tl.load(codes + mid, mask=active, other=0)
        right = active & (x < target)
        lo = tl.where(right, mid + 1, lo)
        hi = tl.where(active & (x >= target), mid, hi)
    hit = (lo < end) & (tl.load(codes + lo, mask=lo < end, other=-1) == target)
    return tl.where(hit, lo, -1)


@triton.jit
def _node_range(indptr, offsets, step, nd):
    """CSR children range [start, end) of the step-``step`` node ids ``nd`` (empty if out of
    range), and the offset of the step's codes in ``child_code``."""
    ip0 = tl.load(offsets + step)
    ip1 = tl.load(offsets + step + 1)
    ok = (nd >= 0) & (nd < ip1 - ip0 - 1)
    safe = tl.where(ok, nd, 0)
    start = tl.load(indptr + ip0 + safe)
    end = tl.where(ok, tl.load(indptr + ip0 + safe + 1), start)
    return start, end


@triton.jit
def _log_normalizer(base, V, BLOCK_V: tl.constexpr):
    """(max, log(sum(exp(x - max)))) of one row, as torch's log_softmax computes them."""
    ar = tl.arange(0, BLOCK_V)
    mx = tl.full([BLOCK_V], float("-inf"), tl.float32)
    for v0 in range(0, V, BLOCK_V):
        x = tl.load(base + v0 + ar, mask=v0 + ar < V, other=float("-inf")).to(tl.float32)
        mx = tl.maximum(mx, x)
    m = tl.max(mx, 0)
    acc = tl.zeros([BLOCK_V], tl.float32)
    for v0 in range(0, V, BLOCK_V):
        x = tl.load(base + v0 + ar, mask=v0 + ar < V, other=float("-inf")).to(tl.float32)
        acc += tl.exp(x - m)
    return m, tl.log(tl.sum(acc, 0))


@triton.jit
def _child_scores(base, codes, start, count, c0, sc, m, logs, CB: tl.constexpr):
    """Scores of the children ``c0 .. c0 + CB`` of a beam (masked beyond ``count``)."""
    j = c0 + tl.arange(0, CB)
    valid = j < count
    code = tl.load(codes + start + j, mask=valid, other=0)
    x = tl.load(base + code, mask=valid, other=float("-inf")).to(tl.float32)
    val = sc + ((x - m) - logs)
    return code, val, valid & (val > float("-inf"))


@triton.jit
def _expand_kernel(logits, scores, node, indptr, child_code, offsets,
                   B, V, step, levels1,
                   cand,
                   KC: tl.constexpr, KP: tl.constexpr, CB: tl.constexpr, RB: tl.constexpr,
                   BLOCK_V: tl.constexpr):
    n = tl.program_id(0).to(tl.int64)
    b = tl.program_id(1).to(tl.int64)
    row = n * B + b
    out = cand + row * KC
    sc = tl.load(scores + row)
    start, end = _node_range(indptr, offsets, step, tl.load(node + row))
    codes = child_code + tl.load(offsets + levels1 + step)
    count = tl.where(sc > float("-inf"), end - start, 0)  # a dead beam has no finite candidate
    base = logits + row * V
    flat0 = b * V
    # pass 1: the finite children in code order, stored while they fit; for the padding, a
    # histogram of code - (rank among finite children)
    hist = tl.zeros([2 * KP], tl.int32)
    finite = 0
    lo = 2147483647
    hi = -2147483648
    if count > 0:
        m, logs = _log_normalizer(base, V, BLOCK_V)
        for c0 in range(0, count, CB):
            code, val, fin = _child_scores(base, codes, start, count, c0, sc, m, logs, CB)
            at = finite + tl.cumsum(fin.to(tl.int32), 0) - 1
            key = _desc_key(val, flat0 + code)
            tl.store(out + at, key, mask=fin & (at < KC))
            gap = tl.minimum(code - at, 2 * KP - 1)
            hist += tl.histogram(tl.where(fin, gap, 2 * KP - 1).to(tl.int32), 2 * KP)
            desc = (key >> 32).to(tl.int32)
            lo = tl.minimum(lo, tl.min(tl.where(fin, desc, 2147483647), 0))
            hi = tl.maximum(hi, tl.max(tl.where(fin, desc, -2147483648), 0))
            finite += tl.sum(fin.to(tl.int32), 0)
        if finite > KC:
            tl.debug_barrier()
            _keep_best(out, base, codes, start, count, sc, m, logs, flat0, lo, hi,
                       KC, CB)
    kept = tl.minimum(finite, KC)
    ar = tl.arange(0, KP)
    skip = tl.zeros([KP], tl.int32)  # -inf candidates: the r-th code that is not a finite
    if kept > 0:  # child is r + #{gaps <= r}
        keys, rank = _rank_sort(out, kept, KP, RB)
        tl.store(out + rank, keys, mask=ar < kept)
        skip = tl.min(tl.reshape(tl.cumsum(hist, 0), [2, KP]), axis=0)  # first half
    if kept < KC:
        pad = _desc_key(tl.full([KP], float("-inf"), tl.float32), flat0 + ar + skip)
        tl.store(out + kept + ar, pad, mask=ar < KC - kept)


@triton.jit
def _keep_best(out, base, codes, start, count, sc, m, logs, flat0, lo, hi,
               KC: tl.constexpr, CB: tl.constexpr):
    """More than KC finite children: store the KC best (unsorted) at ``out``. Bisection on
    the value part of the keys, recomputing the children's scores at each probe; ties at the
    threshold go to the lower codes."""
    lo = lo.to(tl.int64)
    hi = hi.to(tl.int64)
    while lo < hi:
        mid = lo + (hi - lo) // 2
        total = 0
        for c0 in range(0, count, CB):
            code, val, fin = _child_scores(base, codes, start, count, c0, sc, m, logs, CB)
            desc = _desc_key(val, code) >> 32
            total += tl.sum((fin & (desc <= mid)).to(tl.int32), 0)
        hi = tl.where(total >= KC, mid, hi)
        lo = tl.where(total >= KC, lo, mid + 1)
    less = 0
    for c0 in range(0, count, CB):
        code, val, fin = _child_scores(base, codes, start, count, c0, sc, m, logs, CB)
        desc = _desc_key(val, code) >> 32
        less += tl.sum((fin & (desc < lo)).to(tl.int32), 0)
    stored = 0
    ties = 0
    for c0 in range(0, count, CB):
        code, val, fin = _child_scores(base, codes, start, count, c0, sc, m, logs, CB)
        key = _desc_key(val, flat0 + code)
        desc = key >> 32
        tie = fin & (desc == lo)
        tie_rank = ties + tl.cumsum(tie.to(tl.int32), 0) - 1
        keep = (fin & (desc < lo)) | (tie & (tie_rank < KC - less))
        at = stored + tl.cumsum(keep.to(tl.int32), 0) - 1
        tl.store(out + at, key, mask=keep)
        stored += tl.sum(keep.to(tl.int32), 0)
        ties += tl.sum(tie.to(tl.int32), 0)


@triton.jit
def _count_keys(lists, lanes, target, KC: tl.constexpr, STEPS: tl.constexpr,
                STRICT: tl.constexpr):
    """Per list: how many keys are < target (STRICT) or <= target."""
    lo = tl.zeros(lists.shape, tl.int64)
    hi = tl.full(lists.shape, KC, tl.int64)
    for _ in tl.static_range(STEPS):
        active = lo < hi
        mid = (lo + hi) // 2
        x = tl.load(lists + mid, mask=lanes & active, other=0)
        if STRICT:
            right = active & (x < target)
        else:
            right = active & (x <= target)
        lo = tl.where(right, mid + 1, lo)
        hi = tl.where(active & ~right, mid, hi)
    return tl.where(lanes, lo, 0)


@triton.jit
def _select_kernel(cand, node, indptr, child_code, offsets,
                   B, V, step, levels1, K,
                   new_scores, parent, code, next_node,
                   KC: tl.constexpr, BP: tl.constexpr, KP: tl.constexpr,
                   LIST_STEPS: tl.constexpr, CODE_STEPS: tl.constexpr, JB: tl.constexpr,
                   RB: tl.constexpr):
    n = tl.program_id(0).to(tl.int64)
    beams = tl.arange(0, BP).to(tl.int64)
    lanes = beams < B
    lists = cand + (n * B + beams) * KC
    # bisection on the value part: the smallest v with #{keys with value part <= v} >= K
    lo = tl.min(tl.load(lists, mask=lanes, other=SENT) >> 32, 0)
    last = tl.load(lists + KC - 1, mask=lanes, other=0) >> 32
    # with KC = K every list alone holds K keys, so the best list's last one bounds the answer
    hi = tl.where(KC >= K, tl.min(tl.where(lanes, last, 2147483647), 0),
                  tl.max(tl.where(lanes, last, -2147483648), 0))
    while lo < hi:
        mid = lo + (hi - lo) // 2
        total = tl.sum(_count_keys(lists, lanes, (mid << 32) | LOW32, KC, LIST_STEPS, False), 0)
        hi = tl.where(total >= K, mid, hi)
        lo = tl.where(total >= K, lo, mid + 1)
    less = _count_keys(lists, lanes, lo << 32, KC, LIST_STEPS, True)
    equal = _count_keys(lists, lanes, (lo << 32) | LOW32, KC, LIST_STEPS, False) - less
    need = K - tl.sum(less, 0)
    before = tl.cumsum(equal, 0) - equal  # ties at the threshold: lower beams first
    take = less + tl.minimum(tl.maximum(need - before, 0), equal)
    first = tl.cumsum(take, 0) - take
    scratch = parent + n * K
    jb = tl.arange(0, JB)
    for j0 in range(0, tl.max(take, 0), JB):
        j = j0 + jb[None, :]
        keep = lanes[:, None] & (j < take[:, None])
        keys = tl.load(lists[:, None] + j, mask=keep, other=0)
        tl.store(scratch + first[:, None] + j, keys, mask=keep)
    keys, rank = _rank_sort(scratch, K, KP, RB)
    used = tl.arange(0, KP) < K
    val, flat = _decode_key(keys)
    pb = flat // V
    cd = flat - pb * V
    start, end = _node_range(indptr, offsets, step,
                             tl.load(node + n * B + pb, mask=used, other=-1))
    pos = _search(child_code + tl.load(offsets + levels1 + step), start, end, cd, CODE_STEPS)
    row = n * K + rank
    tl.store(new_scores + row, val, mask=used)
    tl.store(parent + row, pb, mask=used)
    tl.store(code + row, cd, mask=used)
    tl.store(next_node + row, tl.where(pos >= 0, pos, 0), mask=used)


@triton.jit
def _codes_to_item_kernel(codes, indptr, child_code, offsets, leaf_item,
                          M, L,
                          items,
                          BLOCK: tl.constexpr, STEPS: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    alive = i < M
    nd = tl.zeros([BLOCK], tl.int64)
    for t in range(0, L):
        start, end = _node_range(indptr, offsets, t, nd)
        target = tl.load(codes + i * L + t, mask=alive, other=-1)
        cc0 = tl.load(offsets + L + 1 + t)
        pos = _search(child_code + cc0, start, tl.where(alive, end, start), target, STEPS)
        alive = alive & (pos >= 0)
        nd = tl.where(alive, pos, 0)
    item = tl.load(leaf_item + nd, mask=alive, other=-1)
    tl.store(items + i, tl.where(alive, item, -1), mask=i < M)


# ---------------------------------------------------------------- torch launchers

def expand_meta(beam_out: int, vocab: int) -> dict:
    """Compile-time constants of ``_expand_kernel``."""
    kc = candidates_per_beam(beam_out, vocab)
    kp = max(2, next_pow2(kc))
    return {"KC": kc, "KP": kp, "CB": min(1024, max(16, next_pow2(vocab))), "RB": _rank_block(kp),
            "BLOCK_V": min(1024, max(16, next_pow2(vocab)))}


def _rank_block(kp: int) -> int:
    """Keys compared per rank-sort iteration: a [KP, RB] block of at most 4096 comparisons
    (16 per thread at 8 warps; larger blocks spill registers)."""
    return max(2, min(64, 4096 // kp))


def select_meta(beams: int, beam_out: int, vocab: int) -> dict:
    """Compile-time constants of ``_select_kernel``."""
    kc = candidates_per_beam(beam_out, vocab)
    kp = max(2, next_pow2(beam_out))
    return {"KC": kc, "BP": max(2, next_pow2(beams)), "KP": kp, "LIST_STEPS": kc.bit_length(),
            "CODE_STEPS": vocab.bit_length(), "JB": max(1, min(16, 4096 // next_pow2(beams))),
            "RB": _rank_block(kp)}


def _ints(*tensors):
    return [t.contiguous() for t in tensors]


def _check_beam_out(beams: int, vocab: int, beam_out: int) -> None:
    if not 1 <= beam_out <= min(beams * vocab, MAX_BEAM_OUT):
        raise ValueError(f"beam_out {beam_out} outside [1, min(B * V = {beams * vocab}, "
                         f"{MAX_BEAM_OUT})]")


def trie_beam_expand(logits, scores, node, indptr, child_code, offsets, step: int,
                     beam_out: int) -> torch.Tensor:
    n, beams, vocab = logits.shape
    _check_beam_out(beams, vocab, beam_out)
    meta = expand_meta(beam_out, vocab)
    cand = torch.empty((n, beams, meta["KC"]), dtype=torch.int64, device=logits.device)
    if n:
        _expand_kernel[(n, beams)](*_ints(logits, scores, node, indptr, child_code, offsets),
                                   beams, vocab, step, offsets.shape[1], cand,
                                   num_warps=NUM_WARPS["expand"], **meta)
    return cand


def trie_beam_select(cand, node, indptr, child_code, offsets, step: int, beam_out: int,
                     vocab: int):
    n, beams, _ = cand.shape
    _check_beam_out(beams, vocab, beam_out)
    out = [torch.empty((n, beam_out), dtype=dt, device=cand.device)
           for dt in (torch.float32, torch.int64, torch.int64, torch.int64)]
    if n:
        _select_kernel[(n,)](*_ints(cand, node, indptr, child_code, offsets),
                             beams, vocab, step, offsets.shape[1], beam_out, *out,
                             num_warps=NUM_WARPS["select"], **select_meta(beams, beam_out, vocab))
    return tuple(out)


def trie_beam_step(logits, scores, node, indptr, child_code, offsets, step: int,
                   beam_out: int):
    """TrieBeamStep = TrieBeamSelect(TrieBeamExpand(...))."""
    cand = trie_beam_expand(logits, scores, node, indptr, child_code, offsets, step, beam_out)
    return trie_beam_select(cand, node, indptr, child_code, offsets, step, beam_out,
                            logits.shape[-1])


def codes_to_item(codes, indptr, child_code, offsets, leaf_item, block: int = 128):
    shape, levels = codes.shape[:-1], codes.shape[-1]
    m = codes[..., 0].numel()
    items = torch.empty(shape, dtype=torch.int64, device=codes.device)
    if m:
        _codes_to_item_kernel[(triton.cdiv(m, block),)](
            *_ints(codes, indptr, child_code, offsets, leaf_item), m, levels, items,
            BLOCK=block, STEPS=CODE_SEARCH_STEPS, num_warps=NUM_WARPS["codes"])
    return items

"""Context keys and vorticity signatures of sliding windows, in amortised O(1) per window.

The key of a window t1..tn is K = G(normalize_F(E_t1 E_t2 ... E_tn)). The
product is associative and only its direction matters (the key normalises),
so the product of every length-n window of a stream is computed by block
aggregation (the vectorised form of a two-stack queue): cut the stream into
blocks of n tokens; the window ending at t = b*n + r is

    suffix of block b-1 from r+1  x  prefix of block b up to r

(the whole block b when r = n-1). Prefix and suffix scans take n sequential
steps of batched 4x4 matmuls over all blocks at once, so every window costs
a constant number of matmuls whatever n is. Partial products are rescaled
every few steps so float32 never under/overflows at n = 4096. Blocks longer
than 128 scan in two levels (sqrt(n) sub-blocks), so the number of
sequential Python steps is ~2 sqrt(n), not n.

Positions with fewer than n tokens of left context (the start of a row)
get the key of the shorter window t0..t: it is a valid key of the same
function, it just rarely matches a stored full-length window closely, so
the kNN kernel gives it little weight and the backoff carries the prediction.

The signature of a window is the 16 coefficients of
sum_{i>1} [E_ti, E_t(i-1)] / 2, a plain sum, so it slides with prefix sums.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nightshift.models.holographic import algebra

RESCALE_EVERY = 8  # min singular value of an embedding is ~0.04: 8 steps stay far from underflow
TWO_LEVEL_ABOVE = 128  # blocks longer than this scan in two levels


def _scan_steps(blocks: Tensor, reverse: bool) -> Tensor:
    """Running products along dim 0 of blocks (n, M, 4, 4), one sequential step per position."""
    n = blocks.shape[0]
    out = torch.empty_like(blocks)  # (n, M, 4, 4)
    order = range(n - 1, -1, -1) if reverse else range(n)
    prev = None
    for step, i in enumerate(order):
        if prev is None:
            out[i] = blocks[i]
        elif reverse:
            torch.matmul(blocks[i], out[prev], out=out[i])  # E_i x (E_i+1 ... E_end)
        else:
            torch.matmul(out[prev], blocks[i], out=out[i])  # (E_start ... E_i-1) x E_i
        if step % RESCALE_EVERY == RESCALE_EVERY - 1:
            out[i] = algebra.frobenius_normalize(out[i])
        prev = i
    return out


def _scan(blocks: Tensor, reverse: bool) -> Tensor:
    """Prefix (or suffix) products along dim 0 of (n, M, 4, 4).

    Long blocks use two levels: scans inside sub-blocks of ~sqrt(n) run for all sub-blocks
    at once, then a scan of the sub-block totals, then one batched matmul joins them. That
    is ~2 sqrt(n) sequential steps instead of n, for 2 matmuls per position instead of 1.
    """
    n, m = blocks.shape[:2]
    if n <= TWO_LEVEL_ABOVE:
        return _scan_steps(blocks, reverse)
    sub = math.isqrt(n - 1) + 1  # sub-block length
    count = -(-n // sub)
    pad = count * sub - n
    if pad:  # identity at the end changes no prefix, and no suffix of a real position
        eye = torch.eye(4, dtype=blocks.dtype, device=blocks.device).expand(pad, m, 4, 4)
        blocks = torch.cat([blocks, eye])
    inner = blocks.reshape(count, sub, m, 4, 4).transpose(0, 1).reshape(sub, count * m, 4, 4)
    inner = _scan_steps(inner.contiguous(), reverse).reshape(sub, count, m, 4, 4)  # within sub-blocks
    totals = inner[0] if reverse else inner[sub - 1]  # (count, m, 4, 4) product of each sub-block
    outer = _scan_steps(totals, reverse)  # inclusive scan of totals
    eye = torch.eye(4, dtype=blocks.dtype, device=blocks.device).expand(1, m, 4, 4)
    if reverse:  # suffix = (within sub-block) x (all later sub-blocks)
        later = torch.cat([outer[1:], eye])  # (count, m, 4, 4)
        full = torch.matmul(inner, algebra.frobenius_normalize(later))
    else:  # prefix = (all earlier sub-blocks) x (within sub-block)
        earlier = torch.cat([eye, outer[:-1]])
        full = torch.matmul(algebra.frobenius_normalize(earlier), inner)
    return full.transpose(0, 1).reshape(count * sub, m, 4, 4)[:n]


def sliding_products(emb: Tensor, n: int) -> Tensor:
    """emb (B, L, 4, 4) -> (B, L, 4, 4): direction of E_s ... E_t with s = max(0, t - n + 1).

    Amortised O(1) work per position (about 3 batched 4x4 matmuls), independent of n.
    Output matrices are rescaled arbitrarily (positive factors): normalise before use.
    """
    bsz, length = emb.shape[:2]
    nb = -(-length // n)  # blocks per row
    pad = nb * n - length
    eye = torch.eye(4, dtype=emb.dtype, device=emb.device)
    if pad:
        emb = torch.cat([emb, eye.expand(bsz, pad, 4, 4)], dim=1)  # identity padding keeps prefixes exact
    blocks = emb.reshape(bsz * nb, n, 4, 4).transpose(0, 1).contiguous()  # (n, B*nb, 4, 4)
    prefix = _scan(blocks, reverse=False)  # (n, B*nb, 4, 4)
    out = prefix.reshape(n, bsz, nb, 4, 4)
    if nb > 1:
        suffix = _scan(blocks, reverse=True).reshape(n, bsz, nb, 4, 4)
        # window ending at (block b, offset r) = suffix[r + 1, b - 1] @ prefix[r, b]; r = n-1 uses I.
        left = torch.cat([suffix[1:, :, :-1], eye.expand(1, bsz, nb - 1, 4, 4)], dim=0)  # (n, B, nb-1, 4, 4)
        full = torch.matmul(left, out[:, :, 1:])  # (n, B, nb-1, 4, 4)
        out = torch.cat([out[:, :, :1], full], dim=2)  # (n, B, nb, 4, 4)
    out = out.permute(1, 2, 0, 3, 4).reshape(bsz, nb * n, 4, 4)  # (B, L_padded, 4, 4)
    return out[:, :length]


def direct_products(emb: Tensor, n: int) -> Tensor:
    """Reference O(n) per window: the same result as `sliding_products`, window by window, float64."""
    bsz, length = emb.shape[:2]
    e64 = emb.to(torch.float64)
    out = torch.empty(bsz, length, 4, 4, dtype=torch.float64)
    for t in range(length):
        m = e64[:, max(0, t - n + 1)]
        for i in range(max(0, t - n + 1) + 1, t + 1):
            m = algebra.frobenius_normalize(m @ e64[:, i])
        out[:, t] = m
    return out


def keys_from_products(prod: Tensor) -> tuple[Tensor, Tensor]:
    """Window products (..., 4, 4) -> (unit key direction (..., 16), key norm (...)).

    K = G(normalize_F(P)); in coefficients normalize_F means ||c|| = 1/2.
    Retrieval uses the unit direction; sleep needs the norm (salience is not scale-free).
    """
    c = algebra.coefficients(prod)  # (..., 16)
    c = c / (2.0 * c.norm(dim=-1, keepdim=True).clamp_min(1e-30))  # ||M||_F = 1
    k = algebra.grace_coefficients(c)  # (..., 16)
    norm = k.norm(dim=-1)  # (...)
    return k / norm.clamp_min(1e-30)[..., None], norm


def commutator_coefficients(emb: Tensor) -> Tensor:
    """emb (B, L, 4, 4) -> (B, L, 16): coefficients of [E_t, E_t-1] / 2 (zero at t = 0)."""
    a, b = emb[:, 1:], emb[:, :-1]  # (B, L-1, 4, 4)
    comm = algebra.coefficients(torch.matmul(a, b) - torch.matmul(b, a)) / 2.0  # (B, L-1, 16)
    return torch.cat([comm.new_zeros(emb.shape[0], 1, 16), comm], dim=1)  # (B, L, 16)


def sliding_signatures(emb: Tensor, n: int) -> Tensor:
    """emb (B, L, 4, 4) -> (B, L, 16): vorticity signature of the window ending at t (prefix sums)."""
    comm = commutator_coefficients(emb).to(torch.float64)  # (B, L, 16)
    csum = comm.cumsum(dim=1)  # (B, L, 16): sum_{i<=t} comm_i
    # window [s, t] sums comm over i in (s, t]; s = max(0, t - n + 1).
    start = (torch.arange(emb.shape[1], device=emb.device) - n + 1).clamp_min(0)  # (L,)
    sig = csum - csum[:, start]  # (B, L, 16)
    return sig.to(emb.dtype)


def direct_signature(emb: Tensor) -> Tensor:
    """Reference: signature of one whole window emb (W, 4, 4) -> (16,)."""
    total = torch.zeros(16, dtype=emb.dtype)
    for i in range(1, emb.shape[0]):
        total += algebra.coefficients(algebra.wedge(emb[i], emb[i - 1]))
    return total


def unit(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-30)


def window_features(emb_table: Tensor, tokens: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """tokens (B, L) -> (unit keys (B, L, 16), key norms (B, L), unit signatures (B, L, 16)).

    Position t describes the window tokens[max(0, t-n+1) : t+1]. This is THE key
    function: observe() stores with it and score()/log_probs() look up with it.
    """
    emb = emb_table[tokens]  # (B, L, 4, 4)
    keys, norms = keys_from_products(sliding_products(emb, n))  # (B, L, 16), (B, L)
    sigs = unit(sliding_signatures(emb, n))  # (B, L, 16)
    return keys, norms, sigs

"""Reading memory: the episodes of the text being read, retrieved like the stored ones.

While scoring (or generating) a text, every position s that has already been
read is an episode (key of the window ending at s, next token s + 1). For
position t the `k` nearest of the positions s in [t - window, t - 1] vote next
to the long-term store's neighbours: the text's own recurring names and
phrases, which no training store holds. It is causal: position t only sees
episodes whose next token is at most t, that is, its own left context. It
adapts nothing: no count, weight or stored key changes, and the next text
starts from an empty reading memory. Held-out training rows get the same
evidence when they are observed, so the mixture weight of this vote (delta)
is fit on training text like every other weight.

Retrieval is exact: the scores of each chunk of positions against the
`window` positions before it, masked to the causal band, then top-k.
"""

from __future__ import annotations

import torch
from torch import Tensor

QUERY_CHUNK = 256  # positions per chunk: (B, 256, 256 + window) scores at a time


def reading_neighbours(keys: Tensor, targets: Tensor, k: int, window: int, start: int = 1
                       ) -> tuple[Tensor, Tensor, Tensor]:
    """keys (B, L, D) of positions 0..L-1; targets (B, L): token after each position.

    Returns (sims (B, L, k'), neighbour positions (B, L, k'), their next tokens (B, L, k')) with
    k' = min(k, L - 1); sims is -inf where position t has fewer than k' episodes behind it, and for
    positions before `start` (not asked for: generation only needs the last one).
    """
    bsz, length, _ = keys.shape
    k = min(k, max(length - 1, 0))
    sims = keys.new_full((bsz, length, k), float("-inf"))  # (B, L, k)
    pos = torch.zeros(bsz, length, k, dtype=torch.long, device=keys.device)  # (B, L, k)
    if k == 0:
        return sims, pos, pos.clone()
    for t0 in range(max(1, start), length, QUERY_CHUNK):  # position 0 has nothing behind it
        t1 = min(t0 + QUERY_CHUNK, length)
        lo = max(0, t0 - window)
        scores = torch.bmm(keys[:, t0:t1], keys[:, lo:t1].transpose(1, 2))  # (B, c, span)
        t = torch.arange(t0, t1, device=keys.device)[:, None]  # (c, 1)
        s = torch.arange(lo, t1, device=keys.device)[None, :]  # (1, span)
        scores.masked_fill_(~((s < t) & (s >= t - window)), float("-inf"))
        kk = min(k, scores.shape[2])
        v, i = torch.topk(scores, kk, dim=2)  # (B, c, kk)
        sims[:, t0:t1, :kk] = v
        pos[:, t0:t1, :kk] = i + lo
    nxt = torch.gather(targets, 1, pos.reshape(bsz, -1)).reshape(bsz, length, k)  # (B, L, k)
    return sims, pos, nxt


def window_counts(nxt: Tensor, y: Tensor, window: int) -> tuple[Tensor, Tensor]:
    """Depth 0 of the reading memory: how often y[:, t] was the next token of positions [t - window, t - 1].

    nxt (B, L): the token after each position; y (B, L): the token scored at each position.
    Returns (hits (B, L), episodes (B, L)) as float64. Exact, via sorted (token, position) codes per row:
    the count of value v at positions < p is searchsorted(v * L + p) - searchsorted(v * L).
    """
    bsz, length = nxt.shape
    pos = torch.arange(length, device=nxt.device)  # (L,)
    codes = (nxt.long() * length + pos).sort(dim=1).values  # (B, L)
    lo = (pos - window).clamp_min(0).expand(bsz, -1)  # (B, L)
    base = y.long() * length  # (B, L)
    hits = torch.searchsorted(codes, base + pos) - torch.searchsorted(codes, base + lo)  # (B, L)
    return hits.double(), (pos - lo).double()


def window_tokens(nxt: Tensor, window: int, rows: slice) -> Tensor:
    """The next tokens of the episodes in each position's window: (B, L) -> (B, n, window), -1 where none."""
    bsz, length = nxt.shape
    t = torch.arange(length, device=nxt.device)[rows]  # (n,)
    s = t[:, None] - window + torch.arange(window, device=nxt.device)  # (n, window): positions t-window..t-1
    ids = nxt[:, s.clamp_min(0)]  # (B, n, window)
    return ids.masked_fill((s < 0).expand_as(ids), -1)

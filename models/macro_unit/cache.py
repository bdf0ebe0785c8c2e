"""Counts of (context -> next byte): over the text before each position (in-context), or over a sample (global).

In-context counts are what lets a static model follow a document: a name or
phrase seen 3 KB earlier in the same document is predicted the next time its
context comes round, the way PPM adapts, except that nothing is learned: the
counts are recomputed from the model's own input for every call, over at most
`horizon` bytes before each position and never across a fragment (document)
start, so the score of a byte depends only on the trained state and its left
context, the same whatever evaluation window it sits in.

Both count kinds answer, for a query (position q, context hash h, byte b):
c(h) and c(h, b); the estimate c(h, b) / c(h) is a distribution over the 256
bytes whenever c(h) > 0, which is all the mixer needs for exact normalisation.
"""

from __future__ import annotations

import numpy as np

from nightshift.models.macro_unit.context import mix


def _group_count(keys: np.ndarray, comp: np.ndarray, stride: int, q_keys: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray) -> np.ndarray:
    """How many history positions j with key q_keys[i] lie in [lo[i], hi[i]); comp = sorted group * stride + j."""
    if len(keys) == 0:
        return np.zeros(len(q_keys), dtype=np.int64)
    g = np.minimum(np.searchsorted(keys, q_keys), len(keys) - 1)  # (Q,)
    found = keys[g] == q_keys
    base = g.astype(np.int64) * stride
    n = np.searchsorted(comp, base + hi) - np.searchsorted(comp, base + lo)
    return np.where(found, n, 0)


class InContextCounts:
    """One order's counts over a stream's own history: c and c(b) within a horizon before each query."""

    def __init__(self, ctx: np.ndarray, valid: np.ndarray, x: np.ndarray) -> None:
        """ctx (N,) context hash at each position, valid (N,) where it exists, x (N,) the byte that followed."""
        j = np.flatnonzero(valid)  # (M,) history positions
        self.stride = len(x) + 1
        self.ctx = ctx
        self.keys, inv = np.unique(ctx[j], return_inverse=True)
        self.comp = np.sort(inv.astype(np.int64) * self.stride + j)
        self.pair_keys, pinv = np.unique(mix(ctx[j], x[j]), return_inverse=True)
        self.pair_comp = np.sort(pinv.astype(np.int64) * self.stride + j)
        self.valid = valid

    def query(self, q: np.ndarray, b: np.ndarray, horizon: int, span: int) -> tuple[np.ndarray, np.ndarray]:
        """q (Q,) positions, b (Q,) candidate bytes -> c (Q,), c(b) (Q,): history in [q - horizon + span, q).

        `span` is how far back a context reaches from its position: a history
        position and its whole context then lie inside the `horizon` bytes before
        q, so the counts are the same in any window that holds those bytes.
        """
        h = self.ctx[q]
        lo, hi = np.maximum(q - horizon + span, 0), q
        ok = self.valid[q]
        c = _group_count(self.keys, self.comp, self.stride, h, lo, hi)
        cb = _group_count(self.pair_keys, self.pair_comp, self.stride, mix(h, b), lo, hi)
        return np.where(ok, c, 0), np.where(ok, cb, 0)


class GlobalCounts:
    """Counts of (context hash -> byte) over a training sample: sorted unique keys with uint32 counts."""

    def __init__(self, ctx: np.ndarray, valid: np.ndarray, x: np.ndarray) -> None:
        h = ctx[valid]
        self.keys, c = np.unique(h, return_counts=True)
        self.counts = c.astype(np.uint32)
        self.pair_keys, pc = np.unique(mix(h, x[valid]), return_counts=True)
        self.pair_counts = pc.astype(np.uint32)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.keys, self.counts, self.pair_keys, self.pair_counts))

    @staticmethod
    def _lookup(keys: np.ndarray, counts: np.ndarray, q: np.ndarray) -> np.ndarray:
        if len(keys) == 0:
            return np.zeros(len(q), dtype=np.int64)
        i = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
        return np.where(keys[i] == q, counts[i], 0).astype(np.int64)

    def query(self, h: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """h (Q,) context hashes, b (Q,) bytes -> c(h) (Q,), c(h, b) (Q,)."""
        return self._lookup(self.keys, self.counts, h), self._lookup(self.pair_keys, self.pair_counts, mix(h, b))


__all__ = ["GlobalCounts", "InContextCounts"]

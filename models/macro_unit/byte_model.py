"""The byte model: interpolated (modified) Kneser-Ney over byte n-grams, a proper distribution.

For an order-k context h (k bytes) with table counts c(h, b):

    P_k(b | h) = (max(c(h,b) - D(c), 0) + gamma(h) * P_{k-1}(b | h')) / c(h)    if c(h) > 0
    P_k(b | h) = P_{k-1}(b | h')                                                otherwise
    gamma(h)   = D1 N1(h) + D2 N2(h) + D3 N3+(h),   P_{-1}(b) = 1/256

where h' drops the oldest byte, c(h) = sum_b c(h, b), Nj(h) counts the bytes seen
exactly j (3+: at least 3) times after h, and D(c) is D1, D2 or D3 by c. Summing
over b: sum max(c - D(c), 0) = c(h) - gamma(h) (every D_j <= j), so each level is
a convex mix of a distribution and the level below: P sums to 1 over the 256
bytes in every context, seen or not. This is the property the original macro-unit
model lacked (it dropped gamma in the recursion).

Kneser-Ney: the top order uses raw counts; every lower order uses continuation
counts (how many distinct bytes preceded the n-gram), read off the table one
order up with `key >> 8`. `smoothing="absolute"` uses raw counts at every order.
Discounts are estimated per order from count-of-counts (Chen & Goodman) unless
the config fixes them.

Document starts: a context never reaches across a document boundary or the
start of a text fragment; the first byte of a document is predicted from the
order-0 distribution, the j-th from the j-1 bytes before it (`avail`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nightshift.models.macro_unit.counts import CountTable
from nightshift.models.macro_unit.keys import U64, context_mask, lookup, run_lengths, windows

DEFAULT_DISCOUNTS = (0.5, 1.0, 1.5)  # when a table has too few counts to estimate them


@dataclass(slots=True)
class OrderModel:
    """What scoring needs at one order: effective counts and per-context totals."""

    keys: np.ndarray  # (E,) sorted n-gram keys
    counts: np.ndarray  # (E,) effective counts (raw, or continuation counts)
    ctx_keys: np.ndarray  # (H,) sorted context keys
    ctx_total: np.ndarray  # (H,) float64 c(h)
    ctx_gamma: np.ndarray  # (H,) float64 D1 N1(h) + D2 N2(h) + D3 N3+(h)
    discounts: np.ndarray  # (4,) float64: D(0)=0, D1, D2, D3

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.keys, self.counts, self.ctx_keys, self.ctx_total, self.ctx_gamma))


def estimate_discounts(counts: np.ndarray) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts from count-of-counts, clamped so D_j <= j keeps P normalised."""
    n = np.bincount(np.minimum(counts, 5), minlength=6).astype(np.float64)
    n1, n2, n3, n4 = n[1], n[2], n[3], n[4]
    if min(n1, n2, n3, n4) == 0:
        return DEFAULT_DISCOUNTS
    y = n1 / (n1 + 2 * n2)
    raw = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    return tuple(float(np.clip(d, 0.05, j - 0.05)) for j, d in zip((1, 2, 3), raw, strict=True))


def build_order(keys: np.ndarray, counts: np.ndarray, k: int, discounts: tuple[float, ...]) -> OrderModel:
    """Group an order's effective counts by context: totals c(h) and back-off mass gamma(h)."""
    d = np.array((0.0, *discounts), dtype=np.float64)  # D(c) for c = 0, 1, 2, 3+
    ctx = keys & context_mask(k)  # (E,) context part of each key
    perm = np.argsort(ctx, kind="stable")
    ctx_sorted, cnt_sorted = ctx[perm], counts[perm]
    if len(perm) == 0:
        empty = np.zeros(0, dtype=np.float64)
        return OrderModel(keys, counts, ctx_sorted, empty, empty.copy(), d)
    starts = np.flatnonzero(np.concatenate(([True], ctx_sorted[1:] != ctx_sorted[:-1])))
    total = np.add.reduceat(cnt_sorted, starts).astype(np.float64)
    gamma = np.add.reduceat(d[np.minimum(cnt_sorted, 3)], starts)
    return OrderModel(keys, counts, ctx_sorted[starts], total, gamma, d)


class ByteModel:
    """Read-only view of the n-gram tables that scores bytes; rebuilt when the counts change."""

    def __init__(self, tables: list[CountTable], *, smoothing: str, discounts: tuple[float, ...] = ()) -> None:
        self.order = len(tables) - 1
        self.orders: list[OrderModel] = []
        for k, table in enumerate(tables):
            if smoothing == "kneser_ney" and k < self.order:
                # continuation counts: distinct left extensions, from the table one order up
                keys, counts = run_lengths(tables[k + 1].keys >> U64(8))
            else:
                keys, counts = table.keys, table.counts
            if len(discounts) == 0:
                d = estimate_discounts(counts)
            elif len(discounts) == 1:
                d = (discounts[0],) * 3
            else:
                d = tuple(discounts)
            self.orders.append(build_order(keys, counts, k, d))

    @property
    def nbytes(self) -> int:
        return sum(o.nbytes for o in self.orders)

    def discounts(self) -> list[tuple[float, float, float]]:
        return [tuple(float(v) for v in o.discounts[1:]) for o in self.orders]

    def _context_stats(self, c_sorted: np.ndarray, perm: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-position (c(h), gamma(h)) of the order-k context, in position order."""
        o = self.orders[k]
        q = c_sorted >> U64(8 * (self.order - k))  # (N,) sorted order-k contexts
        total = np.empty(len(q))
        gamma = np.empty(len(q))
        total[perm] = lookup(o.ctx_keys, o.ctx_total, q)
        gamma[perm] = lookup(o.ctx_keys, o.ctx_gamma, q)
        return total, gamma

    def logp(self, x: np.ndarray, avail: np.ndarray) -> np.ndarray:
        """x (N,) uint8, avail (N,) context bytes usable at each position -> (N,) ln P(x[i] | context)."""
        K = self.order
        w = windows(x, K)  # (N,) next byte + K context bytes
        c = w & context_mask(K)  # (N,) the K context bytes alone
        perm_w = np.argsort(w)
        perm_c = np.argsort(c)
        w_sorted, c_sorted = w[perm_w], c[perm_c]
        p = np.full(len(x), 1.0 / 256)
        cnt = np.empty(len(x), dtype=np.int64)
        for k, o in enumerate(self.orders):
            cnt[perm_w] = lookup(o.keys, o.counts, w_sorted >> U64(8 * (K - k)))
            total, gamma = self._context_stats(c_sorted, perm_c, k)
            seen = (avail >= k) & (total > 0)
            mixed = (np.maximum(cnt - o.discounts[np.minimum(cnt, 3)], 0.0) + gamma * p) / np.where(seen, total, 1.0)
            p = np.where(seen, mixed, p)
        return np.log(p)

    def distribution(self, x: np.ndarray, avail: np.ndarray, at: np.ndarray | None = None) -> np.ndarray:
        """(Q, 256) P(next byte | context) at positions `at` (default: every i), using x[:i] only.

        x[i] itself is ignored, so a query may sit one past the last real byte
        (pad x with any byte). avail (Q,) gives each query's usable context.
        """
        K = self.order
        c = windows(x, K) & context_mask(K)  # (N,)
        if at is not None:
            c = c[at]  # (Q,)
        perm = np.argsort(c)
        c_sorted = c[perm]
        n = len(c)
        p = np.full((n, 256), 1.0 / 256)
        byte_hi = np.arange(256, dtype=U64)[:, None]  # (256, 1)
        for k, o in enumerate(self.orders):
            ctx_k = c_sorted >> U64(8 * (K - k))  # (Q,) sorted
            q = (byte_hi << U64(8 * k)) | ctx_k[None, :]  # (256, Q): each row sorted, rows ascending
            cnt = np.empty((n, 256), dtype=np.int64)
            cnt[perm] = lookup(o.keys, o.counts, q.ravel()).reshape(256, n).T
            total, gamma = self._context_stats(c_sorted, perm, k)
            seen = ((avail >= k) & (total > 0))[:, None]  # (Q, 1)
            num = np.maximum(cnt - o.discounts[np.minimum(cnt, 3)], 0.0) + gamma[:, None] * p  # (Q, 256)
            p = np.where(seen, num / np.where(seen, total[:, None], 1.0), p)
        return p

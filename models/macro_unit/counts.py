"""Streaming byte n-gram counts with a hard cap per order.

`NgramCounts` holds one sorted table per order k = 0..K of `(next byte, k
context bytes)` keys (layout in `keys.py`) with int64 counts. Bytes arrive in
chunks; a chunk is counted with one sort and merged into each table linearly.
When a table grows past `cap` entries it is pruned back to `keep` entries,
dropping the lowest counts (ties broken by key order, so every rank that prunes
the same table drops the same entries). Memory is therefore bounded by the
configuration, whatever the amount of input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nightshift.models.macro_unit.keys import U64, merge_sorted, run_lengths, windows


@dataclass(slots=True)
class CountTable:
    """Sorted unique uint64 keys with int64 counts."""

    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=U64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.counts.nbytes)

    def add(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.keys, self.counts = merge_sorted([(self.keys, self.counts), *parts])

    def prune(self, cap: int, keep: int) -> int:
        """If over `cap` entries, keep the `keep` highest counts; return how many were dropped."""
        n = len(self.keys)
        if n <= cap:
            return 0
        threshold = np.partition(self.counts, n - keep)[n - keep]  # the keep-th largest count
        mask = self.counts > threshold
        ties = np.flatnonzero(self.counts == threshold)[: keep - int(mask.sum())]
        mask[ties] = True
        self.keys, self.counts = self.keys[mask], self.counts[mask]
        return n - len(self.keys)

    def copy(self) -> "CountTable":
        return CountTable(self.keys.copy(), self.counts.copy())


class NgramCounts:
    """Counts of (k context bytes -> next byte) for every order k = 0..order, capped per order."""

    def __init__(self, order: int, cap: int, keep: int) -> None:
        self.order = order
        self.cap = cap
        self.keep = keep
        self.tables = [CountTable() for _ in range(order + 1)]
        self.pruned = 0  # entries dropped by pruning so far (reported as a metric)

    def __len__(self) -> int:
        return sum(len(t) for t in self.tables)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tables)

    def is_empty(self) -> bool:
        return all(len(t) == 0 for t in self.tables)

    def count(self, x: np.ndarray, avail: np.ndarray) -> None:
        """Count every n-gram of a chunk. x (N,) uint8 bytes; avail (N,) context bytes known at each position.

        avail[i] is the distance to the start of i's text fragment (capped at the
        order): an order-k n-gram is counted at i only when avail[i] >= k, so no
        context ever reaches across a document boundary or a window edge. The
        chunk's first byte starts a fragment whatever avail says (the bytes before
        it are not here).
        """
        if len(x) == 0:
            return
        K = self.order
        avail = np.minimum(avail, np.arange(len(x)))
        w = windows(x, K)  # (N,) order-K keys
        full = avail >= K
        keys, counts = run_lengths(np.sort(w[full]))  # sorted order-K keys of positions with full context
        partial = np.flatnonzero(~full)  # the first K bytes of each fragment (rare)
        for k in range(K, -1, -1):
            if k < K:  # one order down: drop the oldest context byte; the run stays sorted
                keys, counts = run_lengths(keys >> U64(8), counts)
            parts = [(keys, counts)]
            sel = partial[avail[partial] >= k]
            if len(sel):
                parts.append(run_lengths(np.sort(w[sel] >> U64(8 * (K - k)))))
            table = self.tables[k]
            table.add(parts)
            self.pruned += table.prune(self.cap, self.keep)

    def add_tables(self, other: list[CountTable]) -> None:
        """Sum another set of tables (same order) into this one, then enforce the caps."""
        for table, extra in zip(self.tables, other, strict=True):
            table.add([(extra.keys, extra.counts)])
            self.pruned += table.prune(self.cap, self.keep)

    def clear(self) -> None:
        self.tables = [CountTable() for _ in range(self.order + 1)]

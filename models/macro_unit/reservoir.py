"""Bounded text samples for MDL consolidation: bottom-k by row hash under a byte cap.

Keeping the rows with the smallest content hashes is a uniform sample without
replacement that needs no RNG state, gives the same answer on every rank, and
merges across ranks by union (take the bottom-k of the union), so DDP ranks
agree on the sample after `synchronize()` without any coordination.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class Reservoir:
    """Rows (tuples of text fragments) keyed by a uint64 priority; keeps the lowest under `cap` bytes."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.items: dict[int, tuple[bytes, ...]] = {}
        self.size = 0  # bytes held
        # The kept rows are the longest priority-ordered prefix of everything offered that fits
        # in `cap`; once a row with priority q fell out, no row above q can ever get in.
        self.bound: int | None = None

    def __len__(self) -> int:
        return len(self.items)

    def threshold(self) -> int | None:
        """Rows with a priority at or above this are never kept (None: no row was evicted yet)."""
        return self.bound

    def offer(self, rows: list[tuple[int, tuple[bytes, ...]]]) -> None:
        for priority, frags in rows:
            if priority not in self.items and frags and (self.bound is None or priority < self.bound):
                self.items[priority] = frags
                self.size += sum(map(len, frags))
        self._trim()

    def _trim(self) -> None:
        if self.bound is not None and any(p >= self.bound for p in self.items):
            self.items = {p: f for p, f in self.items.items() if p < self.bound}
            self.size = sum(sum(map(len, f)) for f in self.items.values())
        if self.size <= self.cap:
            return
        kept: dict[int, tuple[bytes, ...]] = {}
        size = 0
        for priority in sorted(self.items):
            n = sum(map(len, self.items[priority]))
            if size + n > self.cap:
                self.bound = priority if self.bound is None else min(self.bound, priority)
                break
            kept[priority] = self.items[priority]
            size += n
        self.items, self.size = kept, size

    def fragments(self) -> list[bytes]:
        """All fragments, in priority order (deterministic)."""
        return [f for p in sorted(self.items) for f in self.items[p]]

    # ------------------------------------------------------------- state / DDP
    def to_arrays(self) -> dict[str, np.ndarray]:
        prios = sorted(self.items)
        frags = [self.items[p] for p in prios]
        return {
            "priority": np.array(prios, dtype=np.uint64).view(np.int64),
            "n_frags": np.array([len(f) for f in frags], dtype=np.int64),
            "frag_len": np.array([len(b) for f in frags for b in f], dtype=np.int64),
            "data": np.frombuffer(b"".join(b for f in frags for b in f), dtype=np.uint8),
            "bound": np.array([] if self.bound is None else [self.bound], dtype=np.uint64).view(np.int64),
        }

    def add_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Union with another reservoir's rows (from `to_arrays`): the same as having been offered them."""
        for b in arrays["bound"].view(np.uint64).tolist():
            self.bound = int(b) if self.bound is None else min(self.bound, int(b))
        data = arrays["data"].tobytes()
        ends = np.cumsum(arrays["frag_len"])
        pieces = [data[e - n : e] for e, n in zip(ends.tolist(), arrays["frag_len"].tolist(), strict=True)]
        rows, i = [], 0
        for prio, nf in zip(arrays["priority"].view(np.uint64).tolist(), arrays["n_frags"].tolist(), strict=True):
            rows.append((int(prio), tuple(pieces[i : i + nf])))
            i += nf
        self.offer(rows)

    def state(self) -> dict[str, Tensor]:
        return {k: torch.from_numpy(v.copy()) for k, v in self.to_arrays().items()}

    def load(self, state: dict[str, Tensor]) -> None:
        self.items, self.size, self.bound = {}, 0, None
        self.add_arrays({k: v.numpy() for k, v in state.items()})

    @property
    def nbytes(self) -> int:
        return self.size + 64 * len(self.items)

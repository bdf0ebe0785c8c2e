"""Bounded episode buffers (reservoir or ring) and exact kNN retrieval over stored keys.

A `Reservoir` holds named columns (keys, signatures, targets, ...) of at most
`capacity` rows. Policy "reservoir" keeps a uniform sample of everything
offered by giving each row a random priority and keeping the `capacity`
highest: that rule is order-free and mergeable, so a rank can pre-thin its
own pending rows and every rank merging the same gathered rows ends with the
same buffer (DDP). Policy "ring" keeps the most recent rows.

Retrieval is exact: normalised (Q, 16) @ (16, N) in tiles plus a top-k that
first keeps the best groups of 32 columns by their maximum (the k best
values lie in at most k groups), so the (Q, N) score matrix is never sorted
and only one tile of it exists at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

COLUMN_GROWTH = 2  # grow storage geometrically up to capacity


@dataclass(frozen=True, slots=True)
class Column:
    width: int  # 0 for a scalar per row
    dtype: torch.dtype


class Reservoir:
    """At most `capacity` rows of named columns, filled by priority (reservoir) or recency (ring)."""

    def __init__(self, capacity: int, columns: Mapping[str, Column], policy: str = "reservoir") -> None:
        self.capacity = capacity
        self.policy = policy
        self.spec = dict(columns)
        self.size = 0
        self.ring_pos = 0
        self.cols: dict[str, Tensor] = {}
        self.priority = torch.empty(0)
        self._alloc(0)

    # ------------------------------------------------------------- storage
    def _alloc(self, rows: int) -> None:
        old = self.cols
        self.cols = {
            name: torch.zeros((rows, c.width) if c.width else (rows,), dtype=c.dtype) for name, c in self.spec.items()
        }
        prio = torch.zeros(rows)
        if old:
            for name, t in old.items():
                self.cols[name][: self.size] = t[: self.size]
            prio[: self.size] = self.priority[: self.size]
        self.priority = prio

    def _ensure(self, rows: int) -> None:
        have = self.priority.shape[0]
        if rows > have:
            self._alloc(min(self.capacity, max(rows, have * COLUMN_GROWTH, 1024)))

    def view(self, name: str) -> Tensor:
        return self.cols[name][: self.size]

    def nbytes(self) -> int:
        per_row = sum(t[:1].numel() * t.element_size() for t in self.cols.values()) + 4
        return per_row * self.size

    def bytes_per_row(self) -> int:
        return sum(max(1, c.width) * torch.empty(0, dtype=c.dtype).element_size() for c in self.spec.values()) + 4

    def clear(self) -> None:
        self.size = 0
        self.ring_pos = 0
        self._alloc(0)

    # ------------------------------------------------------------- insertion
    def offer(self, rows: Mapping[str, Tensor], priority: Tensor) -> None:
        """Add rows (each column (m, ...)) with priorities (m,); keeps the capacity bound."""
        m = priority.shape[0]
        if m == 0:
            return
        if self.policy == "ring":
            self._offer_ring(rows, m)
            return
        free = self.capacity - self.size
        if m <= free:
            self._write(torch.arange(self.size, self.size + m), rows, priority, torch.arange(m))
            self.size += m
            return
        if free > 0:  # fill up with the best of the newcomers first, then compete
            take = torch.topk(priority, free).indices.sort().values
            self._write(torch.arange(self.size, self.capacity), rows, priority, take)
            self.size = self.capacity
            keep = torch.ones(m, dtype=torch.bool)
            keep[take] = False
            idx = keep.nonzero().squeeze(1)
            rows = {k: v[idx] for k, v in rows.items()}
            priority = priority[idx]
        self._compete(rows, priority)

    def _compete(self, rows: Mapping[str, Tensor], priority: Tensor) -> None:
        """Full buffer: newcomers replace the lowest-priority rows they beat (top-capacity rule)."""
        current = self.priority[: self.size]
        floor = current.min()
        idx = (priority > floor).nonzero().squeeze(1)
        r = idx.numel()
        if r == 0:
            return
        r = min(r, self.size)
        cand_p = priority[idx]
        low_p, low_i = torch.topk(current, r, largest=False)  # (r,) the weakest residents
        pool = torch.cat([low_p, cand_p])  # keep the best r of (weakest residents + candidates)
        best = torch.topk(pool, r).indices
        won = best[best >= r] - r  # candidates that made it
        lost = torch.ones(r, dtype=torch.bool)
        lost[best[best < r]] = False  # residents that stayed
        slots = low_i[lost]
        self._write(slots, rows, priority, idx[won])

    def _offer_ring(self, rows: Mapping[str, Tensor], m: int) -> None:
        src = torch.arange(max(0, m - self.capacity), m)  # only the last `capacity` can survive
        pos = (self.ring_pos + torch.arange(src.numel())) % self.capacity
        self._ensure(min(self.capacity, self.size + src.numel()))
        self._write(pos, rows, torch.zeros(m), src)
        self.ring_pos = int((self.ring_pos + src.numel()) % self.capacity)
        self.size = min(self.capacity, self.size + src.numel())

    def _write(self, slots: Tensor, rows: Mapping[str, Tensor], priority: Tensor, src: Tensor) -> None:
        if slots.numel() == 0:
            return
        self._ensure(int(slots.max()) + 1)
        for name, t in rows.items():
            self.cols[name][slots] = t[src].to(self.cols[name].dtype)
        self.priority[slots] = priority[src]

    def extend(self, other: "Reservoir") -> None:
        """Offer every row of another buffer (same columns) with its priorities."""
        self.offer({k: other.view(k) for k in self.spec}, other.priority[: other.size])

    # ------------------------------------------------------------- state
    def state(self) -> dict:
        return {
            "size": self.size,
            "ring_pos": self.ring_pos,
            "priority": self.priority[: self.size].clone(),
            **{f"col.{k}": self.view(k).clone() for k in self.spec},
        }

    def load(self, state: Mapping) -> None:
        self.size = 0
        self._alloc(0)
        size = int(state["size"])
        self._ensure(size)
        for k in self.spec:
            self.cols[k][:size] = state[f"col.{k}"]
        self.priority[:size] = state["priority"]
        self.size = size
        self.ring_pos = int(state["ring_pos"])


def block_topk(scores: Tensor, k: int, block: int = 32) -> tuple[Tensor, Tensor]:
    """Exact top-k per row of scores (q, c), touching most columns only once (for a group max).

    Columns are split into c / block groups of `block` (group g = columns g, g + c/block, ...:
    a strided max reduces faster than a contiguous one). The k largest values lie in the k
    groups with the largest maxima, so only those are searched; the group maxima are reduced
    the same way when wide.
    """
    q, c = scores.shape
    if c % block or c <= 2 * k * block:
        return torch.topk(scores, min(k, c), dim=1)
    groups = c // block
    group_max = scores.view(q, block, groups).amax(1)  # (q, groups)
    _, top_groups = block_topk(group_max, k, block=16)  # (q, k)
    cols = (top_groups.unsqueeze(-1) + torch.arange(block) * groups).reshape(q, -1)  # (q, k * block)
    v, j = torch.topk(scores.gather(1, cols), k, dim=1)
    return v, cols.gather(1, j)


def _knn_blocks(queries: Tensor, keys: Tensor, k: int, query_block: int, key_chunk: int) -> tuple[Tensor, Tensor]:
    nq, n = queries.shape[0], keys.shape[0]
    buf = torch.empty(min(nq, query_block) * min(n, key_chunk), dtype=torch.float32)
    out_v, out_i = [], []
    for qs in range(0, nq, query_block):
        qb = queries[qs : qs + query_block]  # (q, D)
        q = qb.shape[0]
        vals, idxs = [], []
        for s in range(0, n, key_chunk):
            chunk = keys[s : s + key_chunk].float()  # a view when the store is float32
            scores = buf[: q * chunk.shape[0]].view(q, chunk.shape[0])
            torch.matmul(qb, chunk.T, out=scores)  # (q, c)
            v, i = block_topk(scores, k)
            vals.append(v)
            idxs.append(i + s)
        if len(vals) == 1:
            out_v.append(vals[0])
            out_i.append(idxs[0])
            continue
        v_all, i_all = torch.cat(vals, 1), torch.cat(idxs, 1)  # (q, chunks * k)
        v, j = torch.topk(v_all, k, dim=1)
        out_v.append(v)
        out_i.append(i_all.gather(1, j))
    return torch.cat(out_v), torch.cat(out_i)


def knn(
    queries: Tensor,
    keys: Tensor,
    k: int,
    *,
    query_block: int = 128,
    key_chunk: int = 65536,
) -> tuple[Tensor, Tensor]:
    """Exact top-k inner products: queries (Q, D), keys (N, D) -> (values (Q, k'), indices (Q, k')).

    k' = min(k, N). Tiles of (query_block x key_chunk) scores go through a preallocated
    buffer and `block_topk`; per-tile winners are merged with a final top-k. (Running query
    blocks on two Python threads was measured slower on the 2-core box: the tile ops contend.)
    """
    nq, n = queries.shape[0], keys.shape[0]
    k = min(k, n)
    if nq == 0 or k == 0:
        return queries.new_zeros(nq, k), torch.zeros(nq, k, dtype=torch.long)
    queries = queries.float()
    return _knn_blocks(queries, keys, k, query_block, key_chunk)

"""Bounded episode buffers (reservoir or ring) and exact kNN retrieval over stored keys.

A `Reservoir` holds named columns (keys, signatures, targets, ...) of at most
`capacity` rows. Policy "reservoir" keeps a uniform sample of everything
offered by giving each row a random priority and keeping the `capacity`
highest: that rule is order-free and mergeable, so a rank can pre-thin its
own pending rows and every rank merging the same gathered rows ends with the
same buffer (DDP). Policy "ring" keeps the most recent rows.

Retrieval is exact: normalised (Q, D) @ (D, N) in cache-sized tiles reduced
at once to group maxima, then only the k best groups are scored again (the k
best values lie in at most k groups), so the (Q, N) score matrix is never
written to memory, sorted or kept.
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

    def __init__(self, capacity: int, columns: Mapping[str, Column], policy: str = "reservoir",
                 device: torch.device | str = "cpu") -> None:
        self.capacity = capacity
        self.policy = policy
        self.spec = dict(columns)
        self.device = torch.device(device)  # where every column lives; offered rows are moved here
        self.size = 0
        self.ring_pos = 0
        self.cols: dict[str, Tensor] = {}
        self.priority = torch.empty(0, device=self.device)
        self._alloc(0)

    def to(self, device: torch.device | str) -> "Reservoir":
        """Move every column (an explicit transfer; a no-op when already there)."""
        device = torch.device(device)
        if device != self.device:
            self.device = device
            self.cols = {k: v.to(device) for k, v in self.cols.items()}
            self.priority = self.priority.to(device)
        return self

    # ------------------------------------------------------------- storage
    def _alloc(self, rows: int) -> None:
        old = self.cols
        self.cols = {
            name: torch.zeros((rows, c.width) if c.width else (rows,), dtype=c.dtype, device=self.device)
            for name, c in self.spec.items()
        }
        prio = torch.zeros(rows, device=self.device)
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
        dev = self.device
        rows = {k: v.to(dev) for k, v in rows.items()}
        priority = priority.to(dev)
        if self.policy == "ring":
            self._offer_ring(rows, m)
            return
        free = self.capacity - self.size
        if m <= free:
            self._write(torch.arange(self.size, self.size + m, device=dev), rows, priority, torch.arange(m, device=dev))
            self.size += m
            return
        if free > 0:  # fill up with the best of the newcomers first, then compete
            take = torch.topk(priority, free).indices.sort().values
            self._write(torch.arange(self.size, self.capacity, device=dev), rows, priority, take)
            self.size = self.capacity
            keep = torch.ones(m, dtype=torch.bool, device=dev)
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
        lost = torch.ones(r, dtype=torch.bool, device=self.device)
        lost[best[best < r]] = False  # residents that stayed
        slots = low_i[lost]
        self._write(slots, rows, priority, idx[won])

    def _offer_ring(self, rows: Mapping[str, Tensor], m: int) -> None:
        dev = self.device
        src = torch.arange(max(0, m - self.capacity), m, device=dev)  # only the last `capacity` can survive
        pos = (self.ring_pos + torch.arange(src.numel(), device=dev)) % self.capacity
        self._ensure(min(self.capacity, self.size + src.numel()))
        self._write(pos, rows, torch.zeros(m, device=dev), src)
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
        """Host copies (a checkpoint does not depend on where the store lived)."""
        return {
            "size": self.size,
            "ring_pos": self.ring_pos,
            "priority": self.priority[: self.size].cpu().clone(),
            **{f"col.{k}": self.view(k).cpu().clone() for k in self.spec},
        }

    def load(self, state: Mapping) -> None:
        self.size = 0
        self._alloc(0)
        size = int(state["size"])
        self._ensure(size)
        for k in self.spec:
            self.cols[k][:size] = state[f"col.{k}"].to(self.device)
        self.priority[:size] = state["priority"].to(self.device)
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
    offsets = torch.arange(block, device=scores.device) * groups  # (block,)
    cols = (top_groups.unsqueeze(-1) + offsets).reshape(q, -1)  # (q, k * block)
    v, j = torch.topk(scores.gather(1, cols), k, dim=1)
    return v, cols.gather(1, j)


def _knn_tiles(queries: Tensor, keys: Tensor, k: int, query_block: int, tile: int, group: int
               ) -> tuple[Tensor, Tensor]:
    """Two passes per query block, the score matrix never leaving cache.

    Pass 1: for each tile of `tile` keys, the (q, tile) scores (in a buffer that fits in L2) are
    reduced at once to the maximum of each group of `group` columns (group j of a tile = columns
    j, j + tile/group, ...: a strided max vectorises). Pass 2: the k groups with the largest maxima
    hold the k largest scores (any other group's best is beaten by k group maxima), so only their
    k * group keys are scored again and searched. Keys past the last whole tile are scored directly.
    """
    nq, n = queries.shape[0], keys.shape[0]
    per = tile // group  # groups per tile
    tiles = n // tile
    full = tiles * tile
    dev = queries.device
    scores = torch.empty(min(nq, query_block) * tile, dtype=torch.float32, device=dev)
    gmax_buf = torch.empty(min(nq, query_block) * tiles * per, dtype=torch.float32, device=dev)
    offsets = torch.arange(group, device=dev) * per  # (group,) column offsets inside a group
    out_v, out_i = [], []
    for qs in range(0, nq, query_block):
        qb = queries[qs : qs + query_block]  # (q, D)
        q = qb.shape[0]
        sc = scores[: q * tile].view(q, tile)
        gmax = gmax_buf[: q * tiles * per].view(q, tiles, per)
        for t in range(tiles):
            torch.matmul(qb, keys[t * tile : (t + 1) * tile].T, out=sc)  # (q, tile)
            torch.amax(sc.view(q, group, per), dim=1, out=gmax[:, t])  # (q, per)
        _, g = block_topk(gmax.view(q, tiles * per), k)  # (q, k) best groups
        cols = (((g // per) * tile + g % per)[:, :, None] + offsets).reshape(q, -1)  # (q, k * group)
        cand = torch.bmm(keys[cols], qb[:, :, None]).squeeze(2)  # (q, k * group)
        if full < n:  # the tail: every key scored
            cand = torch.cat([cand, qb @ keys[full:].T], 1)
            cols = torch.cat([cols, torch.arange(full, n, device=dev).expand(q, -1)], 1)
        v, j = torch.topk(cand, k, dim=1)
        out_v.append(v)
        out_i.append(cols.gather(1, j))
    return torch.cat(out_v), torch.cat(out_i)


CPU_TILING = (128, 2048)  # (query block, key tile): a (128, 2048) fp32 score block stays in L2
GPU_SCORE_FLOATS = 1 << 28  # scores one GPU launch may hold (1 GiB fp32): few large matmuls, not 10^5 small ones
GPU_QUERY_BLOCK = 4096


def tiling_for(device: torch.device, n_keys: int, group: int = 32) -> tuple[int, int]:
    """(query block, key tile) for the device the keys live on.

    CPU: small blocks that stay in cache. CUDA: one matmul per query block over key tiles
    as large as GPU_SCORE_FLOATS allows (at 1 M keys and 4,096 queries: 16 tiles, 32 launches
    per block, where the CPU sizes would launch ~31,000 kernels).
    """
    if device.type != "cuda":
        return CPU_TILING
    tile = max(CPU_TILING[1], min(n_keys, GPU_SCORE_FLOATS // GPU_QUERY_BLOCK))
    return GPU_QUERY_BLOCK, tile // group * group


def knn(
    queries: Tensor,
    keys: Tensor,
    k: int,
    *,
    query_block: int | None = None,
    tile: int | None = None,
    group: int = 32,
) -> tuple[Tensor, Tensor]:
    """Exact top-k inner products: queries (Q, D), keys (N, D) -> (values (Q, k'), indices (Q, k')).

    k' = min(k, N). Runs where the keys are (queries are moved there explicitly); see `_knn_tiles`.
    Stores too small for the two passes to pay off are scored in one matmul. Block and tile
    sizes default to the keys' device (`tiling_for`).
    """
    auto_block, auto_tile = tiling_for(keys.device, keys.shape[0], group)
    query_block, tile = query_block or auto_block, tile or auto_tile
    nq, n = queries.shape[0], keys.shape[0]
    k = min(k, n)
    if nq == 0 or k == 0:
        return queries.new_zeros(nq, k, device=keys.device), torch.zeros(nq, k, dtype=torch.long, device=keys.device)
    queries = queries.to(device=keys.device, dtype=torch.float32)
    if n < 4 * k * group or n < tile:
        v, i = [], []
        for qs in range(0, nq, query_block):
            vb, ib = torch.topk(queries[qs : qs + query_block] @ keys.float().T, k, dim=1)
            v.append(vb)
            i.append(ib)
        return torch.cat(v), torch.cat(i)
    return _knn_tiles(queries, keys.float(), k, query_block, tile, group)

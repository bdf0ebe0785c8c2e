"""The few torch.distributed collectives the memory merge needs (gloo on CPU, nccl-safe shapes)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def world() -> tuple[int, int] | None:
    """(rank, world_size) when running under an initialised process group of more than one rank."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return None


def all_gather_rows(t: Tensor) -> list[Tensor]:
    """Gather a tensor whose first dimension differs by rank; returns one tensor per rank, in rank order.

    Rows travel as raw bytes so any dtype (float16, bool, int32) works on any backend.
    """
    ws = dist.get_world_size()
    row_shape, dtype = t.shape[1:], t.dtype
    width = 1
    for d in row_shape:
        width *= d
    raw = t.contiguous().reshape(t.shape[0], width).view(torch.uint8)  # (m, width * element_size)
    sizes = [torch.zeros(1, dtype=torch.long) for _ in range(ws)]
    dist.all_gather(sizes, torch.tensor([raw.shape[0]], dtype=torch.long))
    longest = max(int(s) for s in sizes)
    if longest == 0:  # every rank agrees: nothing to send
        return [t.new_zeros(0, *row_shape) for _ in range(ws)]
    padded = torch.zeros(longest, raw.shape[1], dtype=torch.uint8)
    padded[: raw.shape[0]] = raw
    parts = [torch.empty_like(padded) for _ in range(ws)]
    dist.all_gather(parts, padded)
    out = []
    for part, size in zip(parts, sizes, strict=True):
        rows = part[: int(size)].contiguous()
        out.append(rows.view(dtype).reshape(int(size), *row_shape))
    return out


def all_reduce_sum(t: Tensor) -> Tensor:
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj: object, src: int = 0) -> object:
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]

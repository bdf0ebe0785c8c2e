"""The few collectives the memory merge needs, through nightshift/collectives.py (gloo or NCCL alike)."""

from __future__ import annotations

import torch
from torch import Tensor

from nightshift import collectives


def world() -> tuple[int, int] | None:
    """(rank, world_size) when running under an initialised process group of more than one rank."""
    return collectives.world()


def all_gather_rows(t: Tensor) -> list[Tensor]:
    """Gather a tensor whose first dimension differs by rank; returns one tensor per rank, in rank order.

    Rows travel as raw bytes so any dtype (float16, bool, int32) works on any backend;
    the result stays on `t`'s device.
    """
    row_shape, dtype = t.shape[1:], t.dtype
    width = 1
    for d in row_shape:
        width *= d
    raw = t.contiguous().reshape(t.shape[0], width).view(torch.uint8)  # (m, width * element_size)
    sizes = collectives.all_gather(torch.tensor([raw.shape[0]], dtype=torch.long))
    longest = max(int(s) for s in sizes)
    if longest == 0:  # every rank agrees: nothing to send
        return [t.new_zeros(0, *row_shape) for _ in sizes]
    padded = torch.zeros(longest, raw.shape[1], dtype=torch.uint8, device=t.device)
    padded[: raw.shape[0]] = raw
    parts = collectives.all_gather(padded)
    out = []
    for part, size in zip(parts, sizes, strict=True):
        rows = part[: int(size)].contiguous()
        out.append(rows.view(dtype).reshape(int(size), *row_shape))
    return out


def all_reduce_sum(t: Tensor) -> Tensor:
    return collectives.all_reduce(t.clone())


def broadcast_object(obj: object, src: int = 0) -> object:
    return collectives.broadcast_object(obj, src=src)

"""Collectives for merging numpy memory across ranks, through nightshift/collectives.py.

The arrays live in host memory; the helper moves them to whatever device the
process group serves (gloo: none; a CUDA-only NCCL group: the rank's GPU).
"""

from __future__ import annotations

import numpy as np
import torch

from nightshift import collectives


def world() -> tuple[int, int] | None:
    """(rank, world_size) when a process group with more than one rank is active, else None."""
    return collectives.world()


def all_gather_array(arr: np.ndarray) -> list[np.ndarray]:
    """Every rank's 1-d array (sizes may differ), in rank order. dtype must be 8-byte or uint8."""
    dtype = arr.dtype
    wire = np.int64 if dtype.itemsize == 8 else np.uint8
    if dtype.itemsize not in (1, 8):
        raise TypeError(f"all_gather_array supports 1- or 8-byte dtypes, got {dtype}")
    sizes = collectives.all_gather(torch.tensor([len(arr)], dtype=torch.int64))
    sizes_i = [int(s.item()) for s in sizes]
    longest = max(max(sizes_i), 1)
    buf = torch.zeros(longest, dtype=torch.int64 if wire is np.int64 else torch.uint8)
    if len(arr):
        buf[: len(arr)] = torch.from_numpy(np.ascontiguousarray(arr).view(wire))
    out = collectives.all_gather(buf)
    return [t[:s].numpy().view(dtype) for t, s in zip(out, sizes_i, strict=True)]


def all_reduce_ints(values: list[int]) -> list[int]:
    t = torch.tensor(values, dtype=torch.int64)
    return [int(v) for v in collectives.all_reduce(t).tolist()]

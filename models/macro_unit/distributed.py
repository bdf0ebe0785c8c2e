"""torch.distributed helpers for merging numpy memory across ranks (gloo on CPU, nccl on GPU)."""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist


def world() -> tuple[int, int] | None:
    """(rank, world_size) when a process group with more than one rank is active, else None."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return None


def _device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_gather_array(arr: np.ndarray) -> list[np.ndarray]:
    """Every rank's 1-d array (sizes may differ), in rank order. dtype must be 8-byte or uint8."""
    dtype = arr.dtype
    wire = np.int64 if dtype.itemsize == 8 else np.uint8
    if dtype.itemsize not in (1, 8):
        raise TypeError(f"all_gather_array supports 1- or 8-byte dtypes, got {dtype}")
    device = _device()
    n = dist.get_world_size()
    size = torch.tensor([len(arr)], dtype=torch.int64, device=device)
    sizes = [torch.zeros_like(size) for _ in range(n)]
    dist.all_gather(sizes, size)
    sizes_i = [int(s.item()) for s in sizes]
    longest = max(max(sizes_i), 1)
    buf = torch.zeros(longest, dtype=torch.int64 if wire is np.int64 else torch.uint8, device=device)
    if len(arr):
        buf[: len(arr)] = torch.from_numpy(np.ascontiguousarray(arr).view(wire)).to(device)
    out = [torch.zeros_like(buf) for _ in range(n)]
    dist.all_gather(out, buf)
    return [t[:s].cpu().numpy().view(dtype) for t, s in zip(out, sizes_i, strict=True)]


def all_reduce_ints(values: list[int]) -> list[int]:
    t = torch.tensor(values, dtype=torch.int64, device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [int(v) for v in t.cpu().tolist()]

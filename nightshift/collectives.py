"""Every torch.distributed collective nightshift makes, in one place, under one device rule.

The rule, so that the same code runs on gloo (CPU) and NCCL (GPUs):

1. A rank binds its device before any process group exists (`bind_device`:
   `torch.cuda.set_device`), so NCCL communicators, barriers and object
   collectives use the rank's own GPU, never GPU 0 of every rank.
2. Groups we create are device-mapped (`backend_for`): `cpu:gloo,cuda:nccl`
   on GPUs, plain `gloo` on CPUs. CPU tensors (loss sums, stop flags, memory
   merges held in host memory) travel over gloo, CUDA tensors (gradients)
   over NCCL, object collectives over gloo.
3. A group someone else made may serve fewer devices (torchrun or Ray with
   `backend="nccl"` serves CUDA only; plain `gloo` is used here for CPU
   only): each collective copies a tensor the group does not serve to the
   group's device (`wire_device`) and copies the result back, so callers
   never care where the group lives.

It sits below every layer (pipelines <- models <- orchestrator all may import
it; it imports nothing of nightshift), so family code (models/*/distributed.py)
merges memory through it without reaching up into the orchestrator: it depends
on torch alone. tests/backends/test_collectives.py holds the source tree to it
(no direct `torch.distributed` collective anywhere else).
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Mapping
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor

ReduceOp = Literal["sum", "max", "min"]
_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
# (device type, backend) pairs a backend serves natively; anything else is copied to the group's device.
# gloo can take CUDA tensors for some ops, but through hidden host copies and not for every op: we copy.
_NATIVE = frozenset({("cpu", "gloo"), ("cpu", "mpi"), ("cpu", "ucc"), ("cuda", "nccl"), ("cuda", "ucc")})


# ------------------------------------------------------------------------------------- groups
def backend_for(device: torch.device | str) -> str:
    """The backend a group of ranks on `device` should use: CPU and CUDA tensors both work on it."""
    return "cpu:gloo,cuda:nccl" if torch.device(device).type == "cuda" else "gloo"


def bind_device(device: torch.device | str) -> None:
    """Make `device` this process's current CUDA device (no-op on CPU); call before a group exists."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)


def init_process_group(*, rank: int, world_size: int, device: torch.device | str, backend: str | None = None,
                       init_method: str | None = None, timeout_s: float = 1800.0) -> str:
    """Bind `device`, then create the default group (`backend_for(device)` unless `backend` is given,
    e.g. "nccl" as torchrun or Ray would make it); returns the backend."""
    backend = backend or backend_for(device)
    bind_device(device)
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=timeout_s))
    return backend


def destroy_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def group_size() -> int | None:
    """Ranks in the default group; None without one (then every collective is the identity)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return None


def world() -> tuple[int, int] | None:
    """(rank, world_size) under a group of more than one rank, else None: whether there is anything to merge.

    The collectives below run on any group, a group of one rank included, so a
    one-GPU run through a real NCCL group exercises the same calls as eight.
    """
    size = group_size()
    return (dist.get_rank(), size) if size is not None and size > 1 else None


# -------------------------------------------------------------------------------- the device rule
def device_backends(backend_config: str) -> dict[str, str]:
    """"cpu:gloo,cuda:nccl" -> {"cpu": "gloo", "cuda": "nccl"}; a bare "nccl" -> {"cuda": "nccl"}."""
    return dict(_parse_backends(backend_config))


@functools.lru_cache(maxsize=16)
def _parse_backends(backend_config: str) -> tuple[tuple[str, str], ...]:
    from torch.distributed.distributed_c10d import Backend, BackendConfig

    return tuple(BackendConfig(Backend(backend_config)).get_device_backend_map().items())


def group_backends() -> dict[str, str]:
    """Device type -> backend of the default group, as torch recorded it."""
    return device_backends(dist.get_backend_config())


def wire_device(device: torch.device, backends: Mapping[str, str], current_cuda: int | None = None) -> torch.device:
    """Where a tensor on `device` must be for a collective on a group with these `backends`.

    Its own device when the group serves it natively; else the host when the
    group serves CPU tensors; else the rank's current CUDA device.
    """
    if (device.type, backends.get(device.type)) in _NATIVE:
        return device
    if ("cpu", backends.get("cpu")) in _NATIVE:
        return torch.device("cpu")
    if ("cuda", backends.get("cuda")) in _NATIVE:
        index = torch.cuda.current_device() if current_cuda is None else current_cuda
        return torch.device("cuda", index)
    raise RuntimeError(f"process group backends {dict(backends)} serve neither CPU (gloo) nor CUDA (nccl) "
                       f"tensors; cannot place a tensor from {device}")


def _wire(t: Tensor) -> Tensor:
    """`t` itself when the group serves its device, else a contiguous copy on the group's device."""
    target = wire_device(t.device, group_backends())
    if target == t.device and t.is_contiguous():
        return t
    return t.to(target, copy=True).contiguous()


# ----------------------------------------------------------------------------------- collectives
def all_reduce(t: Tensor, op: ReduceOp = "sum") -> Tensor:
    """Reduce `t` across ranks in place (sum, max or min) and return it; the identity without a group."""
    if group_size() is None:
        return t
    wire = _wire(t)
    dist.all_reduce(wire, op=_OPS[op])
    if wire is not t:
        t.copy_(wire)
    return t


def all_gather(t: Tensor) -> list[Tensor]:
    """Every rank's `t` (same shape and dtype on every rank), in rank order, on `t`'s device."""
    size = group_size()
    if size is None:
        return [t]
    wire = _wire(t)
    parts = [torch.empty_like(wire) for _ in range(size)]
    dist.all_gather(parts, wire)
    return [p.to(t.device) for p in parts]


def all_gather_object(obj: object) -> list[object]:
    """Every rank's picklable `obj`, in rank order.

    torch runs it on the host when the group serves CPU tensors, else on the
    current CUDA device, which `bind_device` made this rank's own.
    """
    size = group_size()
    if size is None:
        return [obj]
    out: list[object] = [None] * size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: object, src: int = 0) -> object:
    """`obj` from rank `src` on every rank."""
    if group_size() is None:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    if group_size() is not None:
        dist.barrier()

"""What a backend hands the trainer: rank, world size, device, precision; and small DDP helpers."""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True, slots=True)
class Env:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = "local"  # local | ray | modal

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()


def resolve_device(spec: str, env: Env) -> torch.device:
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", env.local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(spec)


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (auto or bf16); fp32 everywhere else."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_version": random.getstate()[0], "python_gauss": random.getstate()[2]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def any_rank(flag: bool, env: Env) -> bool:
    """True on every rank if it is True on any (stop requests, time-based checkpoints)."""
    if not env.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_objects(obj: object, env: Env) -> list[object]:
    if not env.distributed:
        return [obj]
    out: list[object] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(env: Env) -> None:
    if env.distributed:
        dist.barrier()


def env_from_torchrun() -> Env:
    """Env from the standard torch.distributed variables (torchrun, Ray Train, our gloo spawner)."""
    return Env(rank=int(os.environ.get("RANK", 0)), world_size=int(os.environ.get("WORLD_SIZE", 1)),
               local_rank=int(os.environ.get("LOCAL_RANK", 0)))

"""What a backend hands the trainer: rank, world size, device, precision; and small DDP helpers.

The collectives themselves live in nightshift/collectives.py (one device rule
for gloo and NCCL); the helpers here are the trainer's vocabulary on top of them.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import torch

from nightshift import collectives
from nightshift.orchestrator.checkpointing.lease import NO_LEASE, NullLease, RunLease
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import RunConfig
from nightshift.pipelines.store import Store


@dataclass(frozen=True, slots=True)
class Env:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = "local"  # local | ray | modal
    device: str | None = None  # the device the backend assigned this rank (Ray: ray.train.torch.get_device())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """A process group of exactly these ranks exists (one rank included: a 1-GPU NCCL run uses it too)."""
        return collectives.group_size() == self.world_size


def resolve_device(spec: str, env: Env) -> torch.device:
    """The run's device for this rank: `auto` and a bare `cuda` mean this rank's own GPU.

    A backend that assigns devices (Ray: each worker sees only its own GPUs) puts it in
    `env.device`; otherwise rank r of a node takes GPU r (`local_rank`). An explicit
    `cuda:N` or `cpu` is taken as given.
    """
    if spec not in ("auto", "cuda"):
        return torch.device(spec)
    if env.device is not None:
        assigned = torch.device(env.device)
        if spec == "auto" or assigned.type == "cuda":
            return assigned
    if spec == "cuda" or torch.cuda.is_available():
        if not torch.cuda.is_available():
            raise RuntimeError("device=cuda but torch sees no CUDA device (a CPU build of torch, or no driver)")
        return torch.device("cuda", env.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def enable_tf32(device: torch.device) -> None:
    """TF32 tensor cores for fp32 matmuls on CUDA (bf16 autocast covers most of the rest)."""
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (auto or bf16); fp32 everywhere else."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> dict:
    """This rank's random streams: CPU, Python and (on a GPU rank) its own current device's CUDA generator.

    Only the device this rank computes on: a checkpoint saved on 8 GPUs resumes
    on 1 (each rank keeps one state, not one per visible GPU), and a CPU run
    never initialises CUDA.
    """
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_version": random.getstate()[0], "python_gauss": random.getstate()[2]}
    if device.type == "cuda":
        state["cuda_device"] = torch.cuda.get_rng_state(device)
    return state


def rank_rng_state(saved: dict | list, env: Env) -> dict:
    """This rank's state from a checkpoint's per-rank list (rank 0's when the world size changed)."""
    if isinstance(saved, dict):  # a checkpoint from before per-rank states: rank 0's, all GPUs
        return saved
    return saved[env.rank] if len(saved) == env.world_size else saved[0]


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    if device.type != "cuda":
        return
    cuda = state.get("cuda_device")
    if cuda is None and state.get("cuda"):  # older checkpoints: one state per GPU rank 0 saw
        every = state["cuda"]
        cuda = every[device.index or 0] if (device.index or 0) < len(every) else every[0]
    if cuda is not None:
        torch.cuda.set_rng_state(cuda.cpu(), device)


def any_rank(flag: bool, env: Env) -> bool:
    """True on every rank if it is True on any (stop requests, time-based checkpoints)."""
    if not env.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    return bool(collectives.all_reduce(t, "max").item())


def any_ranks(flags: tuple[bool, ...], env: Env) -> tuple[bool, ...]:
    """`any_rank` of several flags in one collective (the trainer's per-step decisions)."""
    if not env.distributed:
        return tuple(bool(f) for f in flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags])
    return tuple(bool(x) for x in collectives.all_reduce(t, "max").tolist())


def mean_over_ranks_tensor(values: torch.Tensor, env: Env) -> torch.Tensor:
    """The mean over ranks of a tensor (on its own device: no host round trip)."""
    if not env.distributed:
        return values
    return collectives.all_reduce(values.clone()) / env.world_size


def gather_objects(obj: object, env: Env) -> list[object]:
    if not env.distributed:
        return [obj]
    return collectives.all_gather_object(obj)


def barrier(env: Env) -> None:
    if env.distributed:
        collectives.barrier()


def env_from_torchrun() -> Env:
    """Env from the standard torch.distributed variables (torchrun, Ray Train, our gloo spawner)."""
    return Env(rank=int(os.environ.get("RANK", 0)), world_size=int(os.environ.get("WORLD_SIZE", 1)),
               local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def acquire_run_lease(store: Store, config: RunConfig, env: Env) -> RunLease | NullLease:
    """Rank 0 takes the run's lease; every rank learns whether it did (so none is left waiting at a barrier)."""
    lease: RunLease | NullLease = NO_LEASE
    error: UserError | None = None
    if env.is_main:
        lease = RunLease(store, config.run_path)
        try:
            lease.acquire()
        except UserError as exc:
            error = exc
    if any_rank(error is not None, env):
        raise error or UserError(f"run {config.run_id}: rank 0 could not take the run's lease (see its log)")
    return lease

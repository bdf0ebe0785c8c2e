"""Multi-process DDP on one machine, without Ray: one process per GPU (or gloo ranks on CPU).

Each rank binds its own device before the process group exists and the group
is device-mapped (`cpu:gloo,cuda:nccl` on GPUs: nightshift/collectives.py),
so the trainer's CPU-side sums and the gradients' NCCL all-reduces both work.
The Modal giant run uses this for `--gpu H100:8`.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import torch
import torch.multiprocessing as mp

from nightshift import collectives
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import RunConfig
from nightshift.orchestrator.tracking.naming import RunNaming
from nightshift.orchestrator.training.runtime import Env, resolve_device


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rank_device(spec: str, rank: int, world: int) -> torch.device:
    """Rank `rank`'s device for `train.device = spec`; one GPU per rank or a clear error."""
    device = resolve_device(spec, Env(rank=rank, world_size=world, local_rank=rank))
    if device.type == "cuda":
        have = torch.cuda.device_count()
        if spec.startswith("cuda:") and world > 1:
            raise UserError(f"device={spec} names one GPU, but --workers {world} needs one GPU per rank; "
                            "use device=cuda (rank r takes GPU r) or device=cpu")
        if world > have:
            raise UserError(f"--workers {world} with device={spec}: NCCL needs one GPU per rank and this machine "
                            f"has {have}; use --workers {have} or --set device=cpu")
    return device


def _worker(rank: int, world: int, port: int, config_dict: dict, store_url: str,
            tracking_uri: str | None, progress: bool, results: Any, naming: RunNaming | None = None) -> None:
    from nightshift.orchestrator.backends.body import train_in_process

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    config = RunConfig.from_dict(config_dict)
    device = rank_device(config.train.device, rank, world)
    collectives.init_process_group(rank=rank, world_size=world, device=device)
    try:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // world))
        result = train_in_process(config, store_url,
                                  Env(rank=rank, world_size=world, local_rank=rank, backend="local",
                                      device=str(device)),
                                  tracking_uri, progress and rank == 0, naming=naming)
        if rank == 0:
            results.put(result)
    finally:
        collectives.destroy_process_group()


def run_local_ddp(config: RunConfig, store_url: str, workers: int, tracking_uri: str | None,
                  progress: bool = True, naming: RunNaming | None = None) -> dict[str, Any]:
    rank_device(config.train.device, 0, workers)  # a user error here, not in every spawned rank
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(workers, _free_port(), config.to_dict(), store_url, tracking_uri,
                                      progress, results, naming), nprocs=workers, join=True, start_method="spawn")
    return results.get()

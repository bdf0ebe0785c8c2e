"""Multi-process DDP on one machine (gloo on CPU, NCCL on GPUs), without Ray."""

from __future__ import annotations

import os
import socket
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from orchestrator.config import RunConfig
from orchestrator.runtime import Env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, config_dict: dict, store_url: str,
            tracking_uri: str | None, progress: bool, results: Any) -> None:
    from orchestrator.launch import train_in_process

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    backend = "nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= world else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // world))
        result = train_in_process(RunConfig.from_dict(config_dict), store_url,
                                  Env(rank=rank, world_size=world, local_rank=rank, backend="local"),
                                  tracking_uri, progress and rank == 0)
        if rank == 0:
            results.put(result)
    finally:
        dist.destroy_process_group()


def run_local_ddp(config: RunConfig, store_url: str, workers: int, tracking_uri: str | None,
                  progress: bool = True) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(workers, _free_port(), config.to_dict(), store_url, tracking_uri,
                                      progress, results), nprocs=workers, join=True, start_method="spawn")
    return results.get()

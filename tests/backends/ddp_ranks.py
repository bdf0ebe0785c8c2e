"""Spawned ranks for tests/backends/test_collectives.py: several runs in one pair of processes.

Each run goes through `nightshift.orchestrator.backends.local_ddp._worker`, the exact body
`run_local_ddp` spawns (process group, trainer, teardown); only the process
start-up, seconds per rank on a busy machine, is paid once for all of them.
"""

from __future__ import annotations

from typing import Any


def ranks_worker(rank: int, world: int, ports: list[int], configs: list[dict], store_url: str, results: Any) -> None:
    from nightshift.orchestrator.backends.local_ddp import _worker

    for port, config in zip(ports, configs, strict=True):
        _worker(rank, world, port, config, store_url, "none", False, results)


def run_many(configs: list[dict], store_url: str, workers: int) -> list[dict]:
    """Rank 0's result of each config, in order."""
    import torch.multiprocessing as mp

    from nightshift.orchestrator.backends.local_ddp import _free_port

    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    ports = [_free_port() for _ in configs]
    mp.start_processes(ranks_worker, args=(workers, ports, configs, store_url, results), nprocs=workers,
                       join=True, start_method="spawn")
    return [results.get() for _ in configs]

"""Run a RunConfig on a backend: in-process, local gloo processes, or a Ray cluster.

The trainer loop is the same function everywhere; a backend only decides how
many processes run it and what `Env` each one gets.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from nightshift.orchestrator.config import RunConfig
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runtime import Env
from nightshift.pipelines.store import Store

log = logging.getLogger(__name__)


def make_tracker(tracking_uri: str | None, store: Store, rank: int, config: RunConfig):  # noqa: ANN201
    """MLflow (embedded sqlite by default) plus a JSONL history beside the run in the store."""
    from nightshift.orchestrator.tracking import build_tracker

    return build_tracker(tracking_uri, store, rank=rank, run_prefix=config.run_path)


def train_in_process(config: RunConfig, store_url: str, env: Env, tracking_uri: str | None,
                     progress: bool = True, checkpoint_callback=None,  # noqa: ANN001
                     parent_run_id: str | None = None) -> dict[str, Any]:
    """The body every backend runs on every rank (`parent_run_id`: nest the tracked run under a sweep's)."""
    from nightshift.orchestrator.trainer import Trainer

    store = Store.open(store_url)
    tracker = make_tracker(tracking_uri, store, env.rank, config)
    trainer = Trainer(config, store, env=env, tracker=tracker, progress_bar=progress,
                      checkpoint_callback=checkpoint_callback, parent_run_id=parent_run_id)
    return trainer.run()


def launch(config: RunConfig, store: Store, *, backend: str = "local", workers: int = 1,
           gpus_per_worker: float = 0.0, tracking_uri: str | None = None, progress: bool = True,
           parent_run_id: str | None = None) -> dict[str, Any]:
    if workers < 1:
        raise UserError(f"--workers {workers}: must be >= 1")
    if parent_run_id and backend == "local" and workers > 1:
        log.warning("nesting under sweep run %s is not wired for local multi-process runs; run %s is "
                    "tracked on its own", parent_run_id, config.run_id)
    if backend == "local":
        if workers == 1:
            return train_in_process(config, store.url, Env(backend="local"), tracking_uri, progress,
                                    parent_run_id=parent_run_id)
        from nightshift.orchestrator.backends.local_ddp import run_local_ddp

        return run_local_ddp(config, store.url, workers, tracking_uri, progress)
    if backend == "ray":
        from nightshift.orchestrator.backends.ray_backend import run_on_ray

        return run_on_ray(config, store.url, workers=workers, gpus_per_worker=gpus_per_worker,
                          tracking_uri=tracking_uri, parent_run_id=parent_run_id)
    raise UserError(f"unknown backend {backend!r}; accepted: local, ray (modal: `modal run jobs/giant.py`)")


def worker_env_defaults() -> None:
    """Offline-friendly defaults every worker process inherits."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

"""The body every backend runs on every rank: build the tracker, run the trainer, return the result.

`train_in_process` is what a local run, each local DDP rank, each Ray Train
worker and the Modal function call; `sweep_cell` is the same for one cell of
a sweep (a Ray task, a Modal `starmap` call, or a plain call locally), taking
the run as a plain dict so it crosses process boundaries unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nightshift.orchestrator.runs.config import RunConfig
from nightshift.orchestrator.tracking.base import Tracker
from nightshift.orchestrator.tracking.naming import RunNaming
from nightshift.orchestrator.training.runtime import Env
from nightshift.pipelines.store import Store


def make_tracker(tracking_uri: str | None, store: Store, rank: int, config: RunConfig,
                 naming: RunNaming | None = None) -> Tracker:
    """MLflow (embedded sqlite by default, the run's config.json among its artifacts) plus the run's durable
    local log in the store; named as the launcher said (`naming`)."""
    from nightshift.orchestrator.tracking import build_tracker

    return build_tracker(tracking_uri, store, rank=rank, run_prefix=config.run_path, naming=naming,
                         config_artifact="config.json")


def train_in_process(config: RunConfig, store_url: str, env: Env, tracking_uri: str | None,
                     progress: bool = True, checkpoint_callback: Callable[[dict[str, Any]], None] | None = None,
                     parent_run_id: str | None = None, naming: RunNaming | None = None) -> dict[str, Any]:
    """Train `config` in this process as rank `env.rank` (`parent_run_id`: nest under a sweep's run)."""
    from nightshift.orchestrator.training.trainer import Trainer

    store = Store.open(store_url)
    tracker = make_tracker(tracking_uri, store, env.rank, config, naming)
    trainer = Trainer(config, store, env=env, tracker=tracker, progress_bar=progress,
                      checkpoint_callback=checkpoint_callback, parent_run_id=parent_run_id)
    return trainer.run()


def sweep_cell(run: dict[str, Any], store_url: str, tracking_uri: str | None, parent_run_id: str | None,
               backend: str = "local", threads: int = 0, progress: bool = False,
               naming: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train (or resume, or no-op) one cell; what Ray tasks and Modal's `starmap` call on the far side.

    `run` and `naming` are plain dicts (`RunConfig.to_dict`, `RunNaming.to_dict`): they cross processes."""
    import torch

    config, before = RunConfig.from_dict(run), torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        return train_in_process(config, store_url, Env(backend=backend), tracking_uri, progress=progress,
                                parent_run_id=parent_run_id, naming=RunNaming.from_dict(naming))
    finally:
        torch.set_num_threads(before)

"""The local backend: this process, or one process per rank on this machine (gloo on CPUs, NCCL on GPUs).

A run with one worker trains in this process; with several, `local_ddp`
spawns one rank per worker. Sweep cells run one after another here, each in
this process with its own thread count.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from nightshift.orchestrator.backends.base import CellOptions, CellResult, TrainOptions, check_workers
from nightshift.orchestrator.backends.body import sweep_cell, train_in_process
from nightshift.orchestrator.errors import USER_ERRORS
from nightshift.orchestrator.runs.config import RunConfig
from nightshift.orchestrator.training.runtime import Env
from nightshift.pipelines.store import Store

log = logging.getLogger(__name__)


class LocalBackend:
    name: ClassVar[str] = "local"

    def check(self, store: Store) -> None:
        """Any store works here."""

    def train(self, config: RunConfig, store: Store, options: TrainOptions) -> dict[str, Any]:
        check_workers(options.workers)
        if options.workers == 1:
            env = Env(backend=options.env_backend or self.name)
            return train_in_process(config, store.url, env, options.tracking_uri, options.progress,
                                    checkpoint_callback=options.checkpoint_callback,
                                    parent_run_id=options.parent_run_id, naming=options.naming)
        if options.parent_run_id:
            log.warning("nesting under sweep run %s is not wired for local multi-process runs; run %s is "
                        "tracked on its own", options.parent_run_id, config.run_id)
        from nightshift.orchestrator.backends.local_ddp import run_local_ddp

        return run_local_ddp(config, store.url, options.workers, options.tracking_uri, options.progress,
                             naming=options.naming)

    def run_cells(self, configs: Sequence[RunConfig], store: Store, options: CellOptions) -> Iterator[CellResult]:
        for index, config in enumerate(configs):
            if options.stop is not None and options.stop.requested:
                return
            if options.on_start is not None:
                options.on_start(index)
            try:
                result = sweep_cell(config.to_dict(), store.url, options.tracking_uri, options.parent_run_id,
                                    threads=options.threads, progress=options.progress,
                                    naming=options.naming.to_dict() if options.naming else None)
            except Exception as exc:
                if isinstance(exc, USER_ERRORS):
                    log.error("cell %s failed: %s", config.run_id, exc)
                else:
                    log.exception("cell %s failed", config.run_id)
                yield index, None, f"{type(exc).__name__}: {exc}"
                continue
            yield index, result, None

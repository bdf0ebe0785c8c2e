"""The Modal backend: one run, or every cell of a sweep, in the deployed app's functions (jobs/giant.py).

`nightshift train --backend modal` calls the app's `train_run` (one container,
`--workers` GPUs); `nightshift sweep --backend modal` maps the app's
`sweep_cell` over the cells with `starmap`. Both containers train through the
local backend and resume from the store after a preemption (Modal retries).
The store must be one this machine and Modal both reach (s3://...): this
machine prepares the data, the containers train on it. Deploy the app once
with `modal deploy jobs/giant.py`; `$NIGHTSHIFT_MODAL_APP` names another.

The argument tuples are built here (`train_args`, `modal_args`) and a test
binds them to the deployed functions' signatures, so the two cannot drift
apart. Untested against Modal's servers (they cannot be reached from CI):
the function bodies run through `.local()` in the tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from nightshift.orchestrator.backends.base import CellOptions, CellResult, TrainOptions, check_workers, error_line
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import RunConfig
from nightshift.orchestrator.tracking.naming import RunNaming
from nightshift.pipelines.store import Store

MODAL_APP_ENV = "NIGHTSHIFT_MODAL_APP"  # the deployed app holding `train_run` and `sweep_cell`
MODAL_APP_DEFAULT = "nightshift-giant"  # jobs/giant.py's
MODAL_GPU = "H100"


class ModalBackend:
    name: ClassVar[str] = "modal"

    def check(self, store: Store) -> None:
        _import_modal()
        if store.is_local:
            raise UserError(f"--backend modal needs a store both this machine and Modal reach (s3://...), "
                            f"not the local folder {store.url}")

    def train(self, config: RunConfig, store: Store, options: TrainOptions) -> dict[str, Any]:
        check_workers(options.workers)
        self.check(store)
        fn = deployed("train_run")
        if options.workers > 1:
            fn = fn.with_options(gpu=f"{MODAL_GPU}:{options.workers}")
        return fn.remote(*train_args(config, store.url, options))

    def run_cells(self, configs: Sequence[RunConfig], store: Store, options: CellOptions) -> Iterator[CellResult]:
        """`starmap` over the cells on the deployed app's `sweep_cell` function."""
        self.check(store)
        fn = deployed("sweep_cell")
        args = modal_args(configs, store.url, options.tracking_uri, options.parent_run_id, options.naming)
        for index, result in enumerate(fn.starmap(args, order_outputs=True, return_exceptions=True)):
            if isinstance(result, BaseException):
                yield index, None, error_line(result)
            else:
                yield index, result, None


def train_args(config: RunConfig, store_url: str, options: TrainOptions) -> tuple[Any, ...]:
    """jobs/giant.py's `train_run(run, store_url, tracking_uri, parent_run_id, gpus, naming)`."""
    return (config.to_dict(), store_url, options.tracking_uri, options.parent_run_id, options.workers,
            options.naming.to_dict() if options.naming else None)


def modal_args(configs: Sequence[RunConfig], store_url: str, tracking_uri: str | None,
               parent: str | None, naming: RunNaming | None = None) -> list[tuple[Any, ...]]:
    """The positional arguments of each `starmap` call: jobs/giant.py's `sweep_cell(run, store_url,
    tracking_uri, parent_run_id, naming)` (it sets backend="modal" itself)."""
    plain = naming.to_dict() if naming else None
    return [(c.to_dict(), store_url, tracking_uri, parent, plain) for c in configs]


def deployed(function: str) -> Any:
    """A function of the deployed app (a lazy reference: nothing talks to Modal until it is called)."""
    modal = _import_modal()
    return modal.Function.from_name(os.environ.get(MODAL_APP_ENV, MODAL_APP_DEFAULT), function)


def _import_modal() -> Any:
    try:
        import modal
    except ImportError:
        raise UserError("--backend modal needs the modal package (pip install modal) and a deployed app "
                        "exposing train_run and sweep_cell (`modal deploy jobs/giant.py`)") from None
    return modal

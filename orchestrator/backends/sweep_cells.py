"""Where a sweep's cells run: one after another here, as Ray tasks, or through Modal `starmap`.

Every runner trains a cell with `sweep_cell`, the same body; they differ only
in how they reach it and yield `(cell, result, error)` as cells finish, so one
broken variant never costs the others. The Modal runner calls the deployed
app's `sweep_cell` (jobs/giant.py) with exactly `modal_args(...)`: a test binds
those tuples to that function's signature, so the two cannot drift apart again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from nightshift.orchestrator.config import RunConfig
from nightshift.orchestrator.errors import USER_ERRORS, UserError
from nightshift.orchestrator.runtime import Env
from nightshift.pipelines.store import Store

if TYPE_CHECKING:
    from nightshift.orchestrator.sweep import Cell

log = logging.getLogger(__name__)

MODAL_APP_ENV = "NIGHTSHIFT_MODAL_APP"  # the deployed app holding `sweep_cell` (default: jobs/giant.py's)
MODAL_APP_DEFAULT = "nightshift-giant"

CellResult = tuple["Cell", dict[str, Any] | None, str | None]  # (cell, result, error)


def sweep_cell(run: dict[str, Any], store_url: str, tracking_uri: str | None, parent_run_id: str | None,
               backend: str = "local", threads: int = 0, progress: bool = False) -> dict[str, Any]:
    """Train (or resume, or no-op) one cell; what Ray tasks and Modal's `starmap` call on the far side."""
    import torch

    from nightshift.orchestrator.launch import train_in_process

    config, before = RunConfig.from_dict(run), torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        return train_in_process(config, store_url, Env(backend=backend), tracking_uri, progress=progress,
                                parent_run_id=parent_run_id)
    finally:
        torch.set_num_threads(before)


def run_local(cells: list["Cell"], store: Store, tracking_uri: str | None, parent: str | None, progress: bool,
              threads: int, stop: Any, notify: Callable[[str, dict[str, Any]], None]) -> Iterator[CellResult]:
    for index, cell in enumerate(cells):
        if stop.requested:
            return
        notify("start", {**cell.to_dict(), "index": index + 1, "total": len(cells)})
        try:
            result = sweep_cell(cell.config.to_dict(), store.url, tracking_uri, parent, threads=threads,
                                progress=progress)
        except Exception as exc:  # noqa: BLE001 - one broken variant must not cost the other cells
            if isinstance(exc, USER_ERRORS):
                log.error("cell %s failed: %s", cell.label, exc)
            else:
                log.exception("cell %s failed", cell.label)
            yield cell, None, f"{type(exc).__name__}: {exc}"
            continue
        yield cell, result, None


def run_ray(cells: list["Cell"], store: Store, tracking_uri: str | None, parent: str | None,
            cpus_per_cell: float) -> Iterator[CellResult]:
    """One Ray task per cell, as many at once as the cluster's CPUs allow; a lost worker retries (and resumes)."""
    try:
        import ray
    except ImportError as exc:
        raise UserError(f"--backend ray needs ray installed ({exc}); pip install 'ray[default]'") from None
    from nightshift.orchestrator.backends.ray_backend import forwarded_env

    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        address = os.environ.get("RAY_ADDRESS")
        ray.init(address=address or "local", runtime_env={"env_vars": forwarded_env()},
                 **({} if address else {"num_cpus": os.cpu_count() or 1}), include_dashboard=False)
        started = True
    try:
        task = ray.remote(num_cpus=cpus_per_cell, max_retries=2)(sweep_cell)
        pending = {task.remote(c.config.to_dict(), store.url, tracking_uri, parent, "ray",
                               max(1, int(cpus_per_cell))): c for c in cells}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except Exception as exc:  # noqa: BLE001 - reported per cell, the others go on
                cause = getattr(exc, "cause", None) or exc
                yield cell, None, f"{type(cause).__name__}: {(str(cause).splitlines() or [''])[0]}"
                continue
            yield cell, result, None
    finally:
        if started:
            ray.shutdown()


def modal_args(cells: list["Cell"], store_url: str, tracking_uri: str | None,
               parent: str | None) -> list[tuple[Any, ...]]:
    """The positional arguments of each `starmap` call: jobs/giant.py's `sweep_cell(run, store_url,
    tracking_uri, parent_run_id)` (it sets backend="modal" itself)."""
    return [(c.config.to_dict(), store_url, tracking_uri, parent) for c in cells]


def run_modal(cells: list["Cell"], store: Store, tracking_uri: str | None, parent: str | None) -> Iterator[CellResult]:
    """`starmap` over the cells on the deployed app's `sweep_cell` function (jobs/giant.py)."""
    try:
        import modal
    except ImportError:
        raise UserError("--backend modal needs the modal package (pip install modal) and a deployed app "
                        "exposing sweep_cell (`modal deploy jobs/giant.py`)") from None
    fn = modal.Function.from_name(os.environ.get(MODAL_APP_ENV, MODAL_APP_DEFAULT), "sweep_cell")
    args = modal_args(cells, store.url, tracking_uri, parent)
    for cell, result in zip(cells, fn.starmap(args, order_outputs=True, return_exceptions=True), strict=True):
        if isinstance(result, BaseException):
            yield cell, None, f"{type(result).__name__}: {(str(result).splitlines() or [''])[0]}"
        else:
            yield cell, result, None

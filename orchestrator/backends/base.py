"""One seam for every backend: train one run, or a set of sweep cells, locally, on Ray or on Modal.

A backend decides *where* the trainer loop runs and on how many ranks; the
loop itself is the same function everywhere (`body.train_in_process`), so a
run started on one backend resumes on another from its checkpoint. Backends
are registered by name (`BACKENDS`) and imported on first use, so Ray and
Modal are loaded only by the runs that ask for them:

    backend = get_backend("ray")
    backend.check(store)                       # user errors before any work
    result = backend.train(config, store, TrainOptions(workers=4))
    for index, result, error in backend.run_cells(configs, store, CellOptions()): ...

`nightshift train --backend`, `nightshift sweep --backend` and the giant run
(`jobs/giant.py`, whose container body trains through the local backend) all
go through this seam.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import RunConfig
from nightshift.orchestrator.tracking.naming import RunNaming
from nightshift.pipelines.store import Store

# name -> "module:class"; the module is imported when the backend is first asked for
REGISTRY: dict[str, str] = {
    "local": "nightshift.orchestrator.backends.local:LocalBackend",
    "ray": "nightshift.orchestrator.backends.ray_backend:RayBackend",
    "modal": "nightshift.orchestrator.backends.modal_backend:ModalBackend",
}
BACKENDS: tuple[str, ...] = tuple(REGISTRY)

CellResult = tuple[int, dict[str, Any] | None, str | None]  # (index into the configs given, result, error)


class StopFlag(Protocol):
    """What run_cells polls between cells (orchestrator.training.signals.StopRequest)."""

    requested: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainOptions:
    """How one run is launched; the run itself is its RunConfig."""

    workers: int = 1  # DDP ranks (local processes, Ray Train workers, GPUs of one Modal container)
    gpus_per_worker: float = 0.0  # Ray: GPUs per worker
    tracking_uri: str | None = None
    progress: bool = True
    parent_run_id: str | None = None  # nest the tracked run under a sweep's
    # Called on every rank after each checkpoint (in-process runs only; e.g. a Modal Volume commit).
    checkpoint_callback: Callable[[dict[str, Any]], None] | None = None
    env_backend: str | None = None  # what an in-process run records as its backend (default: the backend's name)
    naming: RunNaming | None = None  # --experiment / --run-name / --tag, resolved by the launcher


@dataclass(frozen=True, slots=True, kw_only=True)
class CellOptions:
    """How a set of sweep cells is launched."""

    tracking_uri: str | None = None
    parent_run_id: str | None = None
    progress: bool = False
    threads: int = 0  # torch threads per local cell (0: torch's default)
    cpus_per_cell: float = 1.0  # Ray: CPUs per cell task
    stop: StopFlag | None = None  # local: no new cell starts once it is requested
    on_start: Callable[[int], None] | None = None  # local: called with a cell's index before it trains
    naming: RunNaming | None = None  # every cell's experiment and tags (RunNaming.for_cells)


class Backend(Protocol):
    """Where runs execute. Every method raises UserError (one line) for what the user can fix."""

    name: ClassVar[str]

    def check(self, store: Store) -> None:
        """Refuse what cannot work on this backend before any data is prepared or any run starts."""
        ...

    def train(self, config: RunConfig, store: Store, options: TrainOptions) -> dict[str, Any]:
        """Train (or resume, or find finished) one run; rank 0's result dict."""
        ...

    def run_cells(self, configs: Sequence[RunConfig], store: Store, options: CellOptions) -> Iterator[CellResult]:
        """Train each config (one sweep cell each); yield (index, result, error) as cells finish.

        One broken cell never costs the others: its error is yielded as a line and the rest go on.
        """
        ...


def get_backend(name: str) -> Backend:
    """The backend registered as `name`; a one-line error naming the accepted ones otherwise."""
    if name not in REGISTRY:
        raise UserError(f"--backend {name!r}: accepted {', '.join(BACKENDS)}")
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)()


def check_workers(workers: int) -> None:
    if workers < 1:
        raise UserError(f"--workers {workers}: must be >= 1")


def error_line(exc: BaseException) -> str:
    """`Type: first line` of an exception, the form a failed cell is recorded in."""
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"

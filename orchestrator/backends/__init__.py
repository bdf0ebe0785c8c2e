"""Where runs execute: one `Backend` seam (base.py) with `local`, `ray` and `modal` registered by name.

`body.py` is what every backend runs on every rank; `local_ddp.py` spawns
ranks on one machine; `ray_backend.py` is Ray Train and Ray tasks;
`modal_backend.py` calls the deployed Modal app, whose containers run
`modal_body.py`.
"""

from __future__ import annotations

from typing import Any

from nightshift.orchestrator.backends.base import BACKENDS, Backend, CellOptions, TrainOptions, get_backend
from nightshift.orchestrator.runs.config import RunConfig
from nightshift.pipelines.store import Store


def launch(config: RunConfig, store: Store, *, backend: str = "local", **options: Any) -> dict[str, Any]:
    """Train one run on the named backend: `launch(config, store, backend="ray", workers=4)`.

    `options` are TrainOptions' fields; the backend's checks run before anything starts.
    """
    chosen = get_backend(backend)
    chosen.check(store)
    return chosen.train(config, store, TrainOptions(**options))


__all__ = ["BACKENDS", "Backend", "CellOptions", "TrainOptions", "get_backend", "launch"]

"""The sweep's record in the store: `<store>/sweeps/<sweep_id>/sweep.json` (cells, their states, datasets).

`nightshift report` and a re-run of the same sweep start from it.
"""

from __future__ import annotations

import logging
from typing import Any

from nightshift.orchestrator.errors import UserError
from nightshift.pipelines.ids import validate_id
from nightshift.pipelines.store import Store

log = logging.getLogger(__name__)

def sweep_dir(sweep_id: str) -> tuple[str, str]:
    return ("sweeps", validate_id(sweep_id, "sweep id"))


def read_sweep(store: Store, sweep_id: str) -> dict[str, Any]:
    if not store.exists(*sweep_dir(sweep_id), "sweep.json"):
        known = store.listdir("sweeps")
        raise UserError(f"unknown sweep {sweep_id!r} in store {store.url}; "
                        f"{'known: ' + ', '.join(known[:8]) if known else 'the store has no sweeps yet'}")
    from nightshift.pipelines.store import FileSpec

    spec = FileSpec(what="sweep record", fields={"sweep_id": str, "cells": list, "datasets": list},
                    fix="delete it and re-run the same `nightshift sweep`: finished cells are found by their run "
                        "ids and skipped")
    return store.read_json(*sweep_dir(sweep_id), "sweep.json", spec=spec)


def write_sweep(store: Store, manifest: dict[str, Any]) -> None:
    """Write (or replace) the sweep's record, atomically."""
    store.write_json(manifest, *sweep_dir(manifest["sweep_id"]), "sweep.json")

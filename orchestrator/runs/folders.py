"""Where a run lives in the store, and finding one by id.

`<store>/runs/<dataset_id>/<model_id>/<run_id>/` holds config.json (the whole
RunConfig), status.json (running / finished / failed, step), result.json
(final figures), checkpoints/ and samples/.
"""

from __future__ import annotations

import logging
import posixpath
import time
from dataclasses import dataclass
from typing import Any

from nightshift.orchestrator.errors import USER_ERRORS, UserError
from nightshift.orchestrator.runs.config import RunConfig
from nightshift.pipelines.ids import validate_id
from nightshift.pipelines.store import FileSpec, Store

log = logging.getLogger(__name__)


def _config_problem(value: dict[str, Any]) -> str | None:
    try:
        RunConfig.from_dict(value).train.validate()
    except (*USER_ERRORS, KeyError, TypeError, ValueError) as exc:
        return f"not a run config ({type(exc).__name__}: {exc})"
    return None


RUN_CONFIG = FileSpec(
    what="run config",
    fix="restore it (a checkpoint's state holds a copy under 'config') or delete the run folder to start the run "
        "afresh",
    fields={"dataset_id": str, "model.family": str, "model.flavor": str, "model.config": dict, "train": dict},
    check=_config_problem)
STATUS = FileSpec(what="run status", fix="delete it: the next start of the run writes it again",
                  fields={"state": str, "step": int})
RESULT = FileSpec(what="run result",
                  fix="delete it and run the same command again: the run resumes from its last checkpoint and "
                      "writes its result anew",
                  fields={"run_id": str, "step": int, "stop_reason": str})


@dataclass(slots=True)
class RunDir:
    store: Store
    config: RunConfig

    @property
    def parts(self) -> tuple[str, ...]:
        return self.config.run_path

    @property
    def uri(self) -> str:
        return self.store.uri(*self.parts)

    def write_config(self) -> None:
        """Write config.json once; an existing one with other content is refused (ids are content hashes)."""
        if self.store.exists(*self.parts, "config.json"):
            existing = self.store.read_json(*self.parts, "config.json", spec=RUN_CONFIG)
            if RunConfig.from_dict(existing).run_id != self.config.run_id:
                raise UserError(f"run folder {self.uri} holds a different config; refusing to overwrite it")
            return
        self.store.write_json(self.config.to_dict(), *self.parts, "config.json")

    def status(self) -> dict[str, Any]:
        if not self.store.exists(*self.parts, "status.json"):
            return {"state": "new", "step": 0}
        return self.store.read_json(*self.parts, "status.json", spec=STATUS)

    def set_status(self, state: str, step: int, **extra: Any) -> None:
        self.store.write_json({"state": state, "step": step, "updated": time.time(), **extra},
                              *self.parts, "status.json")

    def mark_failed(self, step: int) -> None:
        """Best effort: on a full disk or a lost store, the error that stopped the run is the one to report."""
        try:
            self.set_status("failed", step)
        except Exception as exc:  # noqa: BLE001 - never mask the original failure
            log.warning("could not mark run %s failed: %s", self.config.run_id, exc)

    def write_result(self, result: dict[str, Any]) -> None:
        self.store.write_json(result, *self.parts, "result.json")

    def result(self) -> dict[str, Any] | None:
        if not self.store.exists(*self.parts, "result.json"):
            return None
        return self.store.read_json(*self.parts, "result.json", spec=RESULT)

    def write_text(self, text: str, *name: str) -> None:
        self.store.write_bytes(text.encode("utf-8"), *self.parts, *name)


def find_run(store: Store, run_id: str) -> RunDir:
    """Locate a run by id anywhere in the store."""
    validate_id(run_id, "run id")
    pattern = store.path("runs", "*", "*", run_id, "config.json")
    matches = store.fs.glob(pattern)
    if not matches:
        known = list_run_ids(store)
        more = " ..." if len(known) > 8 else ""
        hint = f"known runs: {', '.join(known[:8])}{more}" if known else "the store has no runs yet"
        raise UserError(f"unknown run {run_id!r} in store {store.url}; {hint}")
    data = store.read_json(posixpath.relpath(matches[0], store.root), spec=RUN_CONFIG)
    return RunDir(store=store, config=RunConfig.from_dict(data))


def list_run_ids(store: Store) -> list[str]:
    return sorted(posixpath.basename(posixpath.dirname(p))
                  for p in store.fs.glob(store.path("runs", "*", "*", "*", "config.json")))

"""A tracking history kept as JSON lines in the artifact store, beside the run it describes.

Needs no server: reports and sweeps can read a run's metric history from the
store alone, also where MLflow was unreachable or off. Object stores cannot
append, so each flush writes one immutable part (`history-00000003.jsonl`);
readers concatenate the parts in order. Values are sanitized like MLflow's,
and re-logged steps are dropped the same way, so both histories agree.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from nightshift.orchestrator.tracking.base import RunStatus, StepFilter, Tracker, check_status, event_records
from nightshift.orchestrator.tracking.sanitize import (
    metric_values,
    sanitize_params,
    sanitize_structure,
    sanitize_tags,
)
from nightshift.pipelines.store import FileSpec, Store

logger = logging.getLogger(__name__)

_PART = re.compile(r"^history-(\d{8})\.jsonl$")
HISTORY_SPEC = FileSpec(what="tracking history part", fields={"kind": str},
                        fix="move it out of the run's tracking folder (MLflow keeps its own copy of the run)")


def _parts(store: Store, prefix: str) -> list[str]:
    try:
        store.fs.invalidate_cache(store.path(prefix))
    except Exception:  # noqa: BLE001 - filesystems without a listing cache
        pass
    return [n for n in store.listdir(prefix) if _PART.match(n)]


def read_history(store: Store, prefix: str) -> list[dict[str, Any]]:
    """Every record of a JSONL history, in the order it was logged."""
    records: list[dict[str, Any]] = []
    for name in _parts(store, prefix):
        records.extend(store.read_jsonl(prefix, name, spec=HISTORY_SPEC))
    return records


def metric_series(records: list[dict[str, Any]], key: str) -> list[dict[str, float]]:
    """[{step, value, timestamp}] of one metric, by step (the shape `query.metric_history` returns too)."""
    out = [{"step": r["step"], "value": r["metrics"][key], "timestamp": r["time_ms"]}
           for r in records if r.get("kind") == "metrics" and key in r["metrics"]]
    return sorted(out, key=lambda p: p["step"])


class JsonlTracker(Tracker):
    """Buffer records; write them as one new part per `flush()` (or every `max_buffer` records)."""

    def __init__(self, store: Store, prefix: str, *, max_buffer: int = 2000) -> None:
        self.store, self.prefix = store, prefix.strip("/")
        self._buffer: list[dict[str, Any]] = []
        self._max_buffer = max_buffer
        self._steps = StepFilter()
        self._next_part = 0
        self._started = False

    @property
    def uri(self) -> str:
        return self.store.uri(self.prefix)

    def start(self, run_key: str, run_name: str, experiment: str, tags: Mapping[str, str],
              params: Mapping[str, Any], parent_run_id: str | None = None) -> str:
        parts = _parts(self.store, self.prefix)
        self._next_part = int(_PART.match(parts[-1])[1]) + 1 if parts else 0
        for record in read_history(self.store, self.prefix) if parts else []:
            if record.get("kind") == "metrics":  # a resumed run: steps already written stay written
                for key in record["metrics"]:
                    self._steps.seen(key, record["step"])
        self._started = True
        self._add({"kind": "start", "run_key": run_key, "run_name": run_name, "experiment": experiment,
                   "parent_run_id": parent_run_id, "tags": sanitize_tags(tags), "params": sanitize_params(params)})
        self.flush()
        return ""

    def _add(self, record: dict[str, Any]) -> None:
        if not self._started:
            return
        self._buffer.append({**record, "time_ms": int(time.time() * 1000)})
        if len(self._buffer) >= self._max_buffer:
            self.flush()

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        fresh = self._steps.admit(metric_values(metrics), int(step))
        if fresh:
            self._add({"kind": "metrics", "step": int(step), "metrics": fresh})

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._add({"kind": "tags", "tags": sanitize_tags(tags)})

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        """Artifacts already live in the store beside this history; nothing to copy."""

    def log_text(self, text: str, artifact_file: str) -> None:
        """Text artifacts go to MLflow; the history only records metrics, tags and events."""

    def log_event(self, name: str, step: int, detail: Mapping[str, Any]) -> None:
        clean = sanitize_structure(dict(detail))
        metrics, _tags = event_records(name, step, clean)
        fresh = self._steps.admit(metrics, int(step))
        if fresh:
            self._add({"kind": "metrics", "step": int(step), "metrics": fresh})
        self._add({"kind": "event", "name": name, "step": int(step), "detail": clean})

    def flush(self) -> None:
        if not self._buffer:
            return
        lines = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in self._buffer)
        self.store.write_bytes(lines.encode("utf-8"), self.prefix, f"history-{self._next_part:08d}.jsonl")
        self._next_part += 1
        self._buffer = []

    def finish(self, status: RunStatus = "FINISHED") -> None:
        check_status(status)
        self._add({"kind": "finish", "status": status})
        self.flush()

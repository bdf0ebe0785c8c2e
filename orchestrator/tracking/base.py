"""The one seam between the trainer and experiment tracking (levanter's `Tracker`, for MLflow).

The trainer talks to a `Tracker` and never to MLflow: rank != 0 gets a
`NoopTracker`, tests and local runs can stack a JSONL history beside MLflow
with `CompositeTracker`, and an MLflow outage is the tracker's business, not
the training loop's. Only `start()` may raise (a bad tracking URI is a user
error worth stopping for); every other call is fire-and-forget.
"""

from __future__ import annotations

import abc
import json
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

logger = logging.getLogger(__name__)

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]
RUN_STATUSES: tuple[str, ...] = ("FINISHED", "FAILED", "KILLED")
RUN_KEY_TAG = "nightshift.run_key"  # one tracked run per key: (dataset_id, model_id, seed)
PARENT_RUN_TAG = "mlflow.parentRunId"  # how MLflow nests sweep children under their parent


class StepFilter:
    """Admit a metric point only if its step is past the last one seen for that key.

    Makes logging idempotent: a resumed run re-running steps after its last
    checkpoint, or a spool replayed twice, cannot duplicate a step.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def seen(self, key: str, step: int) -> None:
        if step > self._last.get(key, -(2**62)):
            self._last[key] = step

    def admit(self, metrics: Mapping[str, float], step: int) -> dict[str, float]:
        fresh = {k: v for k, v in metrics.items() if step > self._last.get(k, -(2**62))}
        for key in fresh:
            self._last[key] = step
        return fresh

    def last(self) -> dict[str, int]:
        return dict(self._last)


def event_records(name: str, step: int, detail: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """An event as (metrics, tags): `events/<name>`=1 at `step`, and `nightshift.event.<name>` = JSON detail."""
    payload = json.dumps({"step": int(step), **{str(k): v for k, v in detail.items()}},
                         sort_keys=True, default=str)
    return {f"events/{name}": 1.0}, {f"nightshift.event.{name}": payload}


def check_status(status: str) -> str:
    if status not in RUN_STATUSES:
        raise ValueError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
    return status


class Tracker(abc.ABC):
    """Where a run's params, metrics, tags, events and artifacts go.

    Call order: `start` once, then any of the logging calls, then `finish`.
    Metric steps must increase per key: a step at or below one already logged
    for that key (a resumed or rolled-back stretch re-run) is dropped, so every
    step appears exactly once in the history.
    """

    @abc.abstractmethod
    def start(self, run_key: str, run_name: str, experiment: str, tags: Mapping[str, str],
              params: Mapping[str, Any], parent_run_id: str | None = None) -> str:
        """Open (or resume, when `run_key` is already tracked in `experiment`) a run; returns its id.

        `params` is the nested config; trackers flatten it with dotted keys.
        Returns "" where the tracker has no run id (Noop, or a spooled start
        whose server is not reachable yet).
        """

    @abc.abstractmethod
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    @abc.abstractmethod
    def set_tags(self, tags: Mapping[str, str]) -> None: ...

    @abc.abstractmethod
    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        """Upload a file or folder; it must stay in place until `flush()` returns."""

    @abc.abstractmethod
    def log_text(self, text: str, artifact_file: str) -> None: ...

    @abc.abstractmethod
    def log_event(self, name: str, step: int, detail: Mapping[str, Any]) -> None:
        """A discrete happening (rollback, sleep, resume): a tag with its detail plus an `events/<name>` metric."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Block until everything logged so far is delivered or durably spooled."""

    @abc.abstractmethod
    def finish(self, status: RunStatus = "FINISHED") -> None: ...

    @property
    def run_id(self) -> str:
        return ""

    @property
    def wants_models(self) -> bool:
        """True where `log_model` goes somewhere: callers skip building a model package otherwise."""
        return False

    def log_inputs(self, datasets: Sequence[Mapping[str, Any]]) -> None:  # noqa: B027 - an optional hook, a no-op by default
        """The run's data as dataset inputs (`tracking.inputs.dataset_inputs`); ignored where unsupported."""

    def log_model(self, local_dir: str, name: str = "model", step: int = 0,  # noqa: B027 - an optional hook
                  params: Mapping[str, Any] | None = None) -> None:
        """A saved MLflow model folder (MLmodel at its root) as the run's logged model `name`.

        `params` describe the model on its own page. The folder must stay in place
        until `flush()` returns; ignored where unsupported.
        """

    def monitor_node(self, node_id: str | None, run_id: str = "") -> None:  # noqa: B027 - an optional hook
        """Log this machine's system metrics as node `node_id` (`system/<node_id>/...`; None: the run's
        only node, `system/...`) into `run_id`, or this tracker's own run; ignored where unsupported.

        `tracking.nodes` says which rank reports which node; rank 0 calls this before `start`.
        """

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.finish("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("KILLED")
        else:
            self.finish("FAILED")


class NoopTracker(Tracker):
    """Non-zero ranks, `--no-tracking`, and unit tests of the trainer."""

    def start(self, run_key: str, run_name: str, experiment: str, tags: Mapping[str, str],
              params: Mapping[str, Any], parent_run_id: str | None = None) -> str:
        return ""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_event(self, name: str, step: int, detail: Mapping[str, Any]) -> None:
        pass

    def flush(self) -> None:
        pass

    def finish(self, status: RunStatus = "FINISHED") -> None:
        check_status(status)


class CompositeTracker(Tracker):
    """Fan every call out to several trackers; one failing tracker never stops the others or the run.

    `start` errors propagate (the caller asked for tracking that cannot
    work); errors in later calls are logged once per tracker and method.
    """

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        self._trackers = list(trackers)
        self._warned: set[tuple[int, str]] = set()
        self._run_id = ""

    @property
    def trackers(self) -> list[Tracker]:
        return list(self._trackers)

    @property
    def run_id(self) -> str:
        return next((t.run_id for t in self._trackers if t.run_id), self._run_id)

    def start(self, run_key: str, run_name: str, experiment: str, tags: Mapping[str, str],
              params: Mapping[str, Any], parent_run_id: str | None = None) -> str:
        ids = [t.start(run_key, run_name, experiment, tags, params, parent_run_id) for t in self._trackers]
        self._run_id = next((i for i in ids if i), "")
        return self._run_id

    def _each(self, method: str, *args: Any) -> None:
        for index, tracker in enumerate(self._trackers):
            try:
                getattr(tracker, method)(*args)
            except Exception as exc:  # noqa: BLE001 - tracking must never stop training
                if (index, method) not in self._warned:
                    self._warned.add((index, method))
                    logger.warning("%s.%s failed (further failures of it are not repeated): %s: %s",
                                   type(tracker).__name__, method, type(exc).__name__, exc)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._each("log_metrics", metrics, step)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._each("set_tags", tags)

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        self._each("log_artifact", local_path, artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._each("log_text", text, artifact_file)

    def log_event(self, name: str, step: int, detail: Mapping[str, Any]) -> None:
        self._each("log_event", name, step, detail)

    @property
    def wants_models(self) -> bool:
        return any(t.wants_models for t in self._trackers)

    def log_inputs(self, datasets: Sequence[Mapping[str, Any]]) -> None:
        self._each("log_inputs", datasets)

    def log_model(self, local_dir: str, name: str = "model", step: int = 0,
                  params: Mapping[str, Any] | None = None) -> None:
        self._each("log_model", local_dir, name, step, params)

    def monitor_node(self, node_id: str | None, run_id: str = "") -> None:
        self._each("monitor_node", node_id, run_id)

    def flush(self) -> None:
        self._each("flush")

    def finish(self, status: RunStatus = "FINISHED") -> None:
        check_status(status)
        self._each("finish", status)

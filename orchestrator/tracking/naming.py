"""Where a tracked run lands and what it is called: `--experiment`, `--run-name`, `--tag k=v`.

    experiment:  --experiment  >  $MLFLOW_EXPERIMENT_NAME  >  the data source (`runs.tags.experiment_name`)
    run name:    --run-name    >  `<family>:<flavor>@<size>` (a sweep: its parent run only)
    tags:        --tag k=v, beside nightshift's own tags (which keep their values: the UI's columns and
                 the lookups of resumed runs rely on them)

The launcher resolves this once (`explicit_naming`, as it resolves the tracking
URI) and hands the result to every process of the run as plain data, so a Ray
worker or a Modal container names its run as the launcher's shell said. The
trainer keeps passing its defaults to `Tracker.start`; `NamedTracker` applies
the naming there, so no trainer or backend decides names itself. None of it
enters a run id: renaming an experiment never changes which run a config is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.tracking.base import RunStatus, Tracker

logger = logging.getLogger(__name__)

EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
RESERVED_TAG_PREFIXES = ("mlflow.", "nightshift.")  # MLflow's own and nightshift's bookkeeping tags


@dataclass(frozen=True, slots=True, kw_only=True)
class RunNaming:
    """The user's naming of a tracked run; empty fields leave the tracker's defaults."""

    experiment: str | None = None
    run_name: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.experiment or self.run_name or self.tags)

    def for_cells(self) -> RunNaming:
        """A sweep's naming for its cells: same experiment and tags; `--run-name` names only the parent."""
        return replace(self, run_name=None)

    def experiment_or(self, default: str, environ: Mapping[str, str] | None = None) -> str:
        """The experiment to track in: this naming's, else $MLFLOW_EXPERIMENT_NAME, else `default`."""
        env = os.environ if environ is None else environ
        return self.experiment or env.get(EXPERIMENT_ENV, "").strip() or default

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a process boundary (a Modal call, a Ray task)."""
        return {"experiment": self.experiment, "run_name": self.run_name, "tags": [list(t) for t in self.tags]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RunNaming:
        data = data or {}
        return cls(experiment=data.get("experiment"), run_name=data.get("run_name"),
                   tags=tuple((str(k), str(v)) for k, v in data.get("tags") or ()))


def parse_tags(pairs: Sequence[str] | None) -> tuple[tuple[str, str], ...]:
    """`["team=nlp", "goal=baseline"]` -> (("team", "nlp"), ("goal", "baseline")); a later key wins."""
    tags: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = str(pair).partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--tag {pair!r}: expected KEY=VALUE, e.g. --tag team=nlp")
        if key.startswith(RESERVED_TAG_PREFIXES):
            raise UserError(f"--tag {key}: tags starting with {' or '.join(RESERVED_TAG_PREFIXES)} are set by "
                            "MLflow and nightshift; pick another key, e.g. --tag team=nlp")
        tags[key] = value
    return tuple(tags.items())


def explicit_naming(experiment: str | None = None, run_name: str | None = None, tags: Sequence[str] | None = None,
                    environ: Mapping[str, str] | None = None) -> RunNaming:
    """What a launcher hands its workers: the flags, with `$MLFLOW_EXPERIMENT_NAME` under `--experiment`."""
    for flag, value in (("--experiment", experiment), ("--run-name", run_name)):
        if value is not None and not value.strip():
            raise UserError(f"{flag} {value!r}: give a non-empty name")
    env = os.environ if environ is None else environ
    chosen = (experiment or "").strip() or env.get(EXPERIMENT_ENV, "").strip() or None
    return RunNaming(experiment=chosen, run_name=(run_name or "").strip() or None, tags=parse_tags(tags))


class NamedTracker(Tracker):
    """A tracker whose `start` takes the naming's experiment, run name and tags over the caller's defaults."""

    def __init__(self, inner: Tracker, naming: RunNaming) -> None:
        self.inner, self.naming = inner, naming

    def start(self, run_key: str, run_name: str, experiment: str, tags: Mapping[str, str],
              params: Mapping[str, Any], parent_run_id: str | None = None) -> str:
        mine = dict(self.naming.tags)
        clashes = sorted(k for k in mine if k in tags and tags[k] != mine[k])
        if clashes:
            logger.warning("--tag %s: nightshift sets these tags itself; keeping its values", ", ".join(clashes))
        return self.inner.start(run_key, self.naming.run_name or run_name, self.naming.experiment_or(experiment),
                                {**mine, **tags}, params, parent_run_id)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.inner.log_metrics(metrics, step)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.inner.set_tags(tags)

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        self.inner.log_artifact(local_path, artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.inner.log_text(text, artifact_file)

    def log_event(self, name: str, step: int, detail: Mapping[str, Any]) -> None:
        self.inner.log_event(name, step, detail)

    def flush(self) -> None:
        self.inner.flush()

    def finish(self, status: RunStatus = "FINISHED") -> None:
        self.inner.finish(status)

    @property
    def run_id(self) -> str:
        return self.inner.run_id

    @property
    def wants_models(self) -> bool:
        return self.inner.wants_models

    def log_inputs(self, datasets: Sequence[Mapping[str, Any]]) -> None:
        self.inner.log_inputs(datasets)

    def log_model(self, local_dir: str, name: str = "model", step: int = 0,
                  params: Mapping[str, Any] | None = None) -> None:
        self.inner.log_model(local_dir, name, step, params)

    def monitor_node(self, node_id: str | None, run_id: str = "") -> None:
        self.inner.monitor_node(node_id, run_id)

    def __getattr__(self, name: str) -> Any:  # the inner tracker's own extras (spool, online, trackers, uri)
        if name == "inner" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)


def named(tracker: Tracker, naming: RunNaming | None, environ: Mapping[str, str] | None = None) -> Tracker:
    """`tracker` under `naming`, with $MLFLOW_EXPERIMENT_NAME where the naming has no experiment; as is when
    neither names anything."""
    naming = naming or RunNaming()
    env = os.environ if environ is None else environ
    if not naming.experiment and env.get(EXPERIMENT_ENV, "").strip():
        naming = replace(naming, experiment=env[EXPERIMENT_ENV].strip())
    return tracker if naming.is_empty else NamedTracker(tracker, naming)

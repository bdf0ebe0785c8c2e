"""The Tracker seam: Noop, Composite (failure isolation), the factory's choices, import hygiene."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.tracking import (
    CompositeTracker,
    JsonlTracker,
    NoopTracker,
    build_tracker,
    metric_series,
    read_history,
)
from nightshift.orchestrator.tracking.base import StepFilter
from nightshift.pipelines.store import Store
from tests.helpers.paths import ROOT


class _Broken(NoopTracker):
    """A backend whose every call after start fails, as a dead exporter would."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        raise ConnectionError("exporter down")

    def set_tags(self, tags: Mapping[str, str]) -> None:
        raise ConnectionError("exporter down")

    def finish(self, status: str = "FINISHED") -> None:
        raise ConnectionError("exporter down")


class _RefusesStart(NoopTracker):
    def start(self, *args: Any, **kwargs: Any) -> str:
        raise UserError("tracking server http://x is unreachable")


def test_noop_accepts_everything_and_checks_status() -> None:
    tracker = NoopTracker()
    assert tracker.start("k", "n", "e", {}, {"a": {"b": 1}}) == ""
    tracker.log_metrics({"loss": 1.0}, 1)
    tracker.log_event("rollback", 3, {"to": 1})
    tracker.flush()
    tracker.finish("KILLED")
    with pytest.raises(ValueError, match="not one of"):
        tracker.finish("DONE")  # type: ignore[arg-type]


def test_step_filter_keeps_the_first_value_of_each_step() -> None:
    steps = StepFilter()
    assert steps.admit({"a": 1.0, "b": 2.0}, 5) == {"a": 1.0, "b": 2.0}
    assert steps.admit({"a": 9.0, "c": 3.0}, 5) == {"c": 3.0}  # a@5 already logged
    assert steps.admit({"a": 9.0}, 4) == {}  # a re-run stretch below the last step
    assert steps.admit({"a": 6.0}, 6) == {"a": 6.0}


def test_composite_fans_out_and_survives_a_failing_tracker(store: Store) -> None:
    history = JsonlTracker(store, "runs/x/tracking")
    tracker = CompositeTracker([_Broken(), history])
    tracker.start("key", "name", "exp", {"t": "1"}, {"lr": 0.1})
    for step in range(3):
        tracker.log_metrics({"loss": 1.0 / (step + 1)}, step)
    tracker.set_tags({"phase": "done"})
    tracker.finish("FINISHED")
    records = read_history(store, "runs/x/tracking")
    assert [p["step"] for p in metric_series(records, "loss")] == [0, 1, 2]
    assert records[-1]["kind"] == "finish" and records[-1]["status"] == "FINISHED"
    assert any(r["kind"] == "tags" and r["tags"] == {"phase": "done"} for r in records)


def test_composite_start_errors_reach_the_caller(store: Store) -> None:
    with pytest.raises(UserError, match="unreachable"):
        CompositeTracker([JsonlTracker(store, "h"), _RefusesStart()]).start("k", "n", "e", {}, {})


def test_context_manager_marks_a_crash_failed(store: Store) -> None:
    with pytest.raises(RuntimeError):
        with JsonlTracker(store, "h") as tracker:
            tracker.start("k", "n", "e", {}, {})
            tracker.log_metrics({"loss": 2.0}, 1)
            raise RuntimeError("diverged")
    last = read_history(store, "h")[-1]
    assert (last["kind"], last["status"]) == ("finish", "FAILED")


def test_factory_gives_noop_off_rank_zero_and_history_without_mlflow(store: Store) -> None:
    assert isinstance(build_tracker(None, store, rank=1, run_prefix="runs/a"), NoopTracker)
    only_history = build_tracker("none", store, rank=0, run_prefix="runs/a")
    assert isinstance(only_history, JsonlTracker)
    assert isinstance(build_tracker(None, store, rank=0, enabled=False), NoopTracker)


def test_factory_default_is_embedded_mlflow_plus_history(store: Store) -> None:
    from nightshift.orchestrator.tracking.mlflow_tracker import MlflowTracker

    tracker = build_tracker(None, store, rank=0, run_prefix=("runs", "d", "m", "r"))
    assert isinstance(tracker, CompositeTracker)
    mlflow_tracker, history = tracker.trackers
    assert isinstance(mlflow_tracker, MlflowTracker) and isinstance(history, JsonlTracker)
    assert mlflow_tracker.uri == f"sqlite:///{store.path('mlflow.db')}"
    assert history.uri == store.uri("runs/d/m/r/tracking")


@pytest.mark.parametrize("uri", ["./mlruns", "file:///tmp/mlruns", "sqllite:///x.db"])
def test_factory_refuses_tracking_uris_mlflow_cannot_use(store: Store, uri: str) -> None:
    with pytest.raises(UserError, match="sqlite:///"):
        build_tracker(uri, store, rank=0)


def test_only_the_mlflow_modules_import_mlflow() -> None:
    """The trainer can import tracking without pulling in mlflow; the MLflow tracker (with its helper for
    inputs, models and system metrics) and the serving package (MLflow models, `nightshift serve`) own it."""
    importers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "orchestrator").rglob("*.py")
                       if any(line.startswith(("import mlflow", "from mlflow")) for line in
                              (s.strip() for s in p.read_text().splitlines())))
    tracking = [p for p in importers if p.startswith("orchestrator/tracking/")]
    assert tracking == ["orchestrator/tracking/mlflow_outputs.py", "orchestrator/tracking/mlflow_tracker.py"]
    others = [p for p in importers if p not in tracking]
    assert all(p.startswith("orchestrator/serving/") or p == "orchestrator/commands/serve.py" for p in others)
    code = ("import sys, nightshift.orchestrator.tracking, nightshift.orchestrator.tracking.query, "
            "nightshift.orchestrator.training.trainer; "
            "assert 'mlflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)

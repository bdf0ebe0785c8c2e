"""The zero-setup default: sqlite tracking DB and artifacts inside the local store."""

from __future__ import annotations

from pathlib import Path

from nightshift.orchestrator.tracking import (
    build_tracker,
    default_tracking_uri,
    metric_series,
    query,
    read_history,
)
from nightshift.pipelines.store import Store
from tests.helpers.tracking import FAST, steps_of


def test_default_tracking_lives_in_the_store(store: Store, tmp_path: Path) -> None:
    tracker = build_tracker(None, store, rank=0, run_prefix="runs/ds/m/r", **FAST)
    run_id = tracker.start("ds/m/0", "m-s0", "tinystories", {"nightshift.backend": "local"},
                           {"train": {"steps": 5}})
    for step in range(5):
        tracker.log_metrics({"train/loss": 3.0 - step * 0.1}, step)
    (tmp_path / "config.json").write_text('{"train": {"steps": 5}}')
    tracker.log_artifact(str(tmp_path / "config.json"))
    tracker.finish()

    uri = default_tracking_uri(store)
    assert uri == f"sqlite:///{store.path('mlflow.db')}" and Path(store.path("mlflow.db")).is_file()
    run = query.get_run(uri, run_id)
    assert run["status"] == "FINISHED" and run["params"] == {"train.steps": "5"}
    assert run["artifact_uri"].startswith(Path(store.path("mlflow-artifacts")).as_uri())
    assert query.list_artifacts(uri, run_id) == ["config.json"]
    assert Path(store.path("mlflow-artifacts"), "tinystories", run_id, "artifacts", "config.json").is_file()
    assert steps_of(uri, run_id, "train/loss") == list(range(5))
    # the JSONL history in the run folder agrees with MLflow
    history = metric_series(read_history(store, "runs/ds/m/r/tracking"), "train/loss")
    assert [(p["step"], p["value"]) for p in history] == \
        [(p["step"], p["value"]) for p in query.metric_history(uri, run_id, "train/loss")]
    assert [r["run_name"] for r in query.runs_of_experiment(uri, "tinystories")] == ["m-s0"]

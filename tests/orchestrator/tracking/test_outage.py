"""A real tracking server stopped mid-run and restarted on the same port: training never notices,
and every metric step ends up in MLflow exactly once."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from nightshift.orchestrator.tracking import query
from nightshift.orchestrator.tracking.mlflow_tracker import MlflowTracker
from nightshift.pipelines.store import Store
from tests.helpers.servers import start_mlflow_server
from tests.helpers.tracking import FAST, steps_of, wait_until

pytestmark = [pytest.mark.mlflow, pytest.mark.s3, pytest.mark.slow]


def _stop(server) -> None:
    server.proc.terminate()
    server.proc.wait(timeout=120)


def test_server_outage_mid_run_loses_and_duplicates_nothing(
        s3_server, store: Store, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # no job runner: stops in seconds
    bucket = s3_server.make_bucket("outage")
    server = start_mlflow_server(tmp_path, s3_server, bucket)
    try:
        tracker = MlflowTracker(server.uri, spool_store=store, **FAST)
        run_id = tracker.start("outage/key", "outage", "outage", {"phase": "before"}, {"lr": 0.1})
        (tmp_path / "before.txt").write_text("before")
        for step in range(20):
            tracker.log_metrics({"loss": 1.0 / (step + 1), "step_sq": float(step * step)}, step)
        tracker.log_artifact(str(tmp_path / "before.txt"))
        tracker.flush()
        assert tracker.online

        _stop(server)  # outage
        (tmp_path / "during.txt").write_text("during")
        for step in range(20, 40):
            tracker.log_metrics({"loss": 1.0 / (step + 1), "step_sq": float(step * step)}, step)
        tracker.set_tags({"phase": "during"})
        tracker.log_event("rollback", 30, {"to_step": 25})
        tracker.log_text("written while the server was down", "notes/during.txt")
        tracker.log_artifact(str(tmp_path / "during.txt"))
        tracker.flush()  # returns: records are durable in the spool, not waiting on the server
        assert not tracker.online and len(tracker.spool) >= 2
        kinds = [tracker.spool.read(n)["kind"] for n in tracker.spool.pending()]
        assert "artifact" in kinds and "text" in kinds and "batch" in kinds
        (tmp_path / "during.txt").unlink()  # the spool holds its own copy

        server = start_mlflow_server(tmp_path, s3_server, bucket, port=server.port)  # same port, same DB
        for step in range(40, 60):
            tracker.log_metrics({"loss": 1.0 / (step + 1), "step_sq": float(step * step)}, step)
            if step == 45:
                tracker.log_metrics({"loss": 99.0}, 44)  # a re-logged step is still dropped
        wait_until(lambda: tracker.online and len(tracker.spool) == 0, timeout=120, what="spool replay")
        tracker.set_tags({"phase": "after"})
        tracker.finish()

        run = MlflowClient(tracking_uri=server.uri).get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.tags["phase"] == "after"
        assert json.loads(run.data.tags["nightshift.event.rollback"])["to_step"] == 25
        for key in ("loss", "step_sq"):
            assert steps_of(server.uri, run_id, key) == list(range(60))  # each step exactly once
        values = {p["step"]: p["value"] for p in query.metric_history(server.uri, run_id, "loss")}
        assert values[44] == pytest.approx(1 / 45) and values[33] == pytest.approx(1 / 34)
        assert query.list_artifacts(server.uri, run_id) == ["before.txt", "during.txt", "notes/during.txt"]
    finally:
        if server.proc.poll() is None:
            _stop(server)

"""MLflow down when a run (re)starts: the documented policy, end to end.

A run that was started before (resume, sweep rerun, Ray restart, Modal retry)
never dies because the tracking server is down: it spools and replays exactly
once when the server is back. A brand-new run stops with one line; an explicit
`--tracking-outage spool` (or `stop`) overrides either way.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.tracking import build_tracker, query
from nightshift.orchestrator.tracking.factory import OUTAGE_ENV
from nightshift.orchestrator.tracking.spool import Spool
from nightshift.pipelines.store import Store
from tests.faults.helpers import (
    STEPS,
    Reference,
    interrupted_run,
    run_config,
    same_weights,
    spawn,
    wait_for,
    weights,
)
from tests.helpers.servers import free_port, start_mlflow_server, stop_process

PREFIX = ("runs", "d-0123456789ab", "m-0123456789ab", "r-0123456789ab")


@pytest.mark.parametrize(("started", "flag", "expect"), [
    (False, None, "stop"), (True, None, "spool"), (False, "spool", "spool"), (True, "stop", "stop")])
def test_outage_policy_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: bool, flag: str | None,
                                expect: str) -> None:
    store = Store.open(str(tmp_path / "store"))
    if started:  # an earlier process of this run got as far as its training loop
        store.write_json({"state": "interrupted", "step": 4}, *PREFIX, "status.json")
    if flag:
        monkeypatch.setenv(OUTAGE_ENV, flag)
    dead = f"http://127.0.0.1:{free_port()}"
    tracker = build_tracker(dead, store, 0, run_prefix=PREFIX, retry_interval_s=0.3, probe_timeout_s=0.5)
    args = ("key-1", "name", "exp", {"t": "1"}, {"lr": 0.1})
    if expect == "stop":
        with pytest.raises(UserError, match="unreachable"):
            tracker.start(*args)
        return
    tracker.start(*args)
    tracker.log_metrics({"loss": 1.0}, 5)
    tracker.finish()
    assert len(Spool(store, "/".join(PREFIX) + "/tracking-spool")) >= 2  # kept for the server's return


@pytest.mark.slow
@pytest.mark.s3
@pytest.mark.mlflow
def test_resume_with_mlflow_down_spools_and_replays_exactly_once(
        store_copy: tuple[Path, str], reference: Reference, s3_server, tmp_path: Path) -> None:
    store, dataset_id = store_copy
    config = run_config(dataset_id)
    bucket = s3_server.make_bucket("outage-resume")
    server = start_mlflow_server(tmp_path, s3_server, bucket)
    try:
        tracker = build_tracker(server.uri, Store.open(str(store)), 0, run_prefix=config.run_path)
        interrupted_run(store, config, at_step=4, tracker=tracker)
        first = query.find_run(server.uri, _experiment(server.uri), config.run_id)
        assert [p["step"] for p in query.metric_history(server.uri, first["run_id"], "train/loss")] == [1, 2, 3, 4]
        stop_process(server.proc)  # the tracking server goes down; the run is restarted meanwhile

        run_dir = next(store.glob(f"runs/*/*/{config.run_id}"))
        proc = spawn("train", "--resume", config.run_id, "--store", str(store), "--tracking-uri", server.uri,
                     "--no-progress", "--json", env={"NIGHTSHIFT_FAULTS": "slow@4:1"})
        wait_for(lambda: any((run_dir / "tracking-spool").glob("0*.json")), 300, "the resumed run to spool", proc)
        proc.send_signal(signal.SIGSTOP)  # hold it (a paused VM) while the server comes back: no timing race
        server = start_mlflow_server(tmp_path, s3_server, bucket, port=server.port)  # same port and DB
        proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        assert json.loads(out)["step"] == STEPS and same_weights(weights(store, config.run_id), reference.weights)
        assert "unreachable" in err and "spooling" in err

        run = query.get_run(server.uri, first["run_id"])  # the same MLflow run, reopened
        assert run["status"] == "FINISHED" and run["tags"]["nightshift.starts"] == "2"
        steps = [p["step"] for p in query.metric_history(server.uri, first["run_id"], "train/loss")]
        assert steps == list(range(1, STEPS + 1))  # every step exactly once
        assert "final/val_bpb" in run["metrics"]
        assert not list((run_dir / "tracking-spool").glob("0*.json"))  # replayed and emptied
    finally:
        if server.proc.poll() is None:
            stop_process(server.proc)


def _experiment(uri: str) -> str:
    (name,) = [n for n in query.experiment_names(uri) if n.startswith("local-pg19")]
    return name

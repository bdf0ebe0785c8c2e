"""MlflowTracker against a real `mlflow server` (sqlite backend, artifacts on moto S3), read back via the client."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest
from mlflow.tracking import MlflowClient

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.tracking import query
from nightshift.orchestrator.tracking.mlflow_tracker import MlflowTracker, replay_spool
from nightshift.orchestrator.tracking.sanitize import REDACTED
from nightshift.pipelines.store import Store
from tests.helpers.servers import free_port
from tests.helpers.tracking import FAST, steps_of

pytestmark = [pytest.mark.mlflow, pytest.mark.s3]

HF = "hf_" + "QwErTyUiOpAsDfGhJkLzXcVbNm012345"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _tracker(uri: str, store: Store, **kwargs) -> MlflowTracker:
    return MlflowTracker(uri, spool_store=store, **{**FAST, **kwargs})


def test_run_round_trip_tags_params_metrics_artifacts(mlflow_server, s3_env, store, tmp_path) -> None:
    tracker = _tracker(mlflow_server.uri, store)
    config = {"dataset_id": "pg19-1a2b3c4d5e6f7a8b", "model": {"family": "holo", "config": {"d": 64}},
              "train": {"lr": 3e-4, "betas": [0.9, 0.95]}}
    run_id = tracker.start("pg19-1a2b/holo-9f/s0", "holo-s0", "pg19 round trip",
                           {"nightshift.family": "holo", "nightshift.backend": "local"}, config)
    for step in range(1, 31):
        tracker.log_metrics({"train/loss": 5.0 / step, "train/lr": 3e-4}, step)
    tracker.log_metrics({"val/bpb": 1.25}, 30)
    tracker.log_event("rollback", 12, {"to_step": 10, "reason": "loss spike"})
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "a.txt").write_text("once upon a time")
    (tmp_path / "ckpt.bin").write_bytes(b"\x00\x01weights")
    tracker.log_artifact(str(tmp_path / "ckpt.bin"), "checkpoints")
    tracker.log_artifact(str(tmp_path / "samples"))
    tracker.log_text("final sample text", "samples/final.txt")
    tracker.set_tags({"nightshift.stop_reason": "finished"})
    tracker.finish("FINISHED")

    client = MlflowClient(tracking_uri=mlflow_server.uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "holo-s0"
    assert run.data.params["model.config.d"] == "64" and run.data.params["train.betas"] == "[0.9, 0.95]"
    assert run.data.tags["nightshift.family"] == "holo" and run.data.tags["nightshift.stop_reason"] == "finished"
    assert run.data.tags["nightshift.run_key"] == "pg19-1a2b/holo-9f/s0"
    assert json.loads(run.data.tags["nightshift.event.rollback"]) == {"step": 12, "to_step": 10, "reason": "loss spike"}
    assert steps_of(mlflow_server.uri, run_id, "train/loss") == list(range(1, 31))
    assert [m.step for m in client.get_metric_history(run_id, "events/rollback")] == [12]
    history = query.metric_history(mlflow_server.uri, run_id, "train/loss")
    assert history[9]["step"] == 10 and history[9]["value"] == pytest.approx(0.5)
    assert query.list_artifacts(mlflow_server.uri, run_id) == [
        "checkpoints/ckpt.bin", "samples/a.txt", "samples/final.txt"]
    local = client.download_artifacts(run_id, "checkpoints/ckpt.bin", str(tmp_path / "dl"))
    assert Path(local).read_bytes() == b"\x00\x01weights"
    pages = boto3.client("s3", endpoint_url=s3_env.endpoint).get_paginator("list_objects_v2").paginate(Bucket="mlflow")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]  # the session's server holds many runs
    assert any(run_id in key and key.endswith("ckpt.bin") for key in keys)  # really on S3
    found = query.find_run(mlflow_server.uri, "pg19 round trip", "pg19-1a2b/holo-9f/s0")
    assert found is not None and found["run_id"] == run_id and found["metrics"]["val/bpb"] == 1.25


def test_secrets_never_reach_the_server(mlflow_server, s3_env, store, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-0123456789-abcdef")
    tracker = _tracker(mlflow_server.uri, store)
    run_id = tracker.start("secrets/1", "secrets", "secrets", {"Authorization": "Basic dXNlcjpwYXNz",
                                                                "deploy": f"HF_TOKEN={HF}"},
                           {"env": {"AWS_SECRET_ACCESS_KEY": AWS_SECRET, "hf_token": HF,
                                    "MLFLOW_TRACKING_TOKEN": "tok-0123456789-abcdef"},
                            "store": "s3://bucket/x", "model": {"tokenizer": "gpt2"}})
    (tmp_path / "config.json").write_text(json.dumps({"train": {"lr": 1}, "secrets": {"password": "pa55word!"}}))
    tracker.log_artifact(str(tmp_path / "config.json"))
    tracker.log_text(f"launched with --hf-token {HF} by tok-0123456789-abcdef", "launch.txt")
    tracker.set_tags({"note": f"key {AWS_SECRET}"})
    tracker.log_event("resume", 1, {"api_key": "sk-abcdefghijklmnopqrstuvwx"})
    tracker.finish()

    run = MlflowClient(tracking_uri=mlflow_server.uri).get_run(run_id)
    assert run.data.params["env.hf_token"] == REDACTED and run.data.params["model.tokenizer"] == "gpt2"
    assert run.data.tags["Authorization"] == REDACTED
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    texts = [Path(client.download_artifacts(run_id, name, str(tmp_path / "dl"))).read_text()
             for name in ("config.json", "launch.txt")]
    assert json.loads(texts[0]) == {"train": {"lr": 1}, "secrets": {"password": REDACTED}}
    everything = json.dumps([run.data.params, run.data.tags, texts])
    stored = mlflow_server.backend_db.read_bytes()
    for secret in (HF, AWS_SECRET, "tok-0123456789-abcdef", "pa55word!", "sk-abcdefghijklmnopqrstuvwx",
                   "dXNlcjpwYXNz"):
        assert secret not in everything
        assert secret.encode() not in stored  # nowhere in the server's database either


def test_same_run_key_resumes_one_run_and_keeps_steps_unique(mlflow_server, s3_env, store) -> None:
    first = _tracker(mlflow_server.uri, store)
    run_id = first.start("resume/key", "resume", "resume", {}, {"lr": 0.1})
    for step in range(10):
        first.log_metrics({"loss": float(step)}, step)
    first.finish("KILLED")
    second = _tracker(mlflow_server.uri, store)
    assert second.start("resume/key", "resume", "resume", {}, {"lr": 0.1, "added": 1}) == run_id
    assert MlflowClient(tracking_uri=mlflow_server.uri).get_run(run_id).info.status == "RUNNING"
    for step in range(6, 15):  # resumed from a checkpoint at step 6
        second.log_metrics({"loss": 100.0 + step}, step)
    second.finish()
    run = query.get_run(mlflow_server.uri, run_id)
    assert run["status"] == "FINISHED" and run["tags"]["nightshift.starts"] == "2"
    assert run["params"] == {"lr": "0.1", "added": "1"}
    assert steps_of(mlflow_server.uri, run_id, "loss") == list(range(15))
    assert len(query.runs_of_experiment(mlflow_server.uri, "resume")) == 1


def test_sweep_parent_with_nested_children(mlflow_server, s3_env, store) -> None:
    parent = _tracker(mlflow_server.uri, store)
    parent_id = parent.start("sweep/lr", "lr sweep", "sweeps", {"nightshift.sweep": "lr"}, {"grid": [1, 2]})
    children = []
    for lr in (0.1, 0.2):
        child = _tracker(mlflow_server.uri, store)
        children.append(child.start(f"sweep/lr/{lr}", f"lr={lr}", "sweeps", {}, {"lr": lr}, parent_run_id=parent_id))
        child.log_metrics({"val/bpb": 2.0 - lr}, 100)
        child.finish()
    parent.finish()
    nested = query.child_runs(mlflow_server.uri, parent_id)
    assert sorted(r["run_id"] for r in nested) == sorted(children)
    assert all(r["parent_run_id"] == parent_id for r in nested)
    assert sorted(r["metrics"]["val/bpb"] for r in nested) == [1.8, 1.9]


def test_unreachable_server_at_start_is_one_line_user_error(store) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    tracker = _tracker(dead, store, fallback_hint="sqlite:////data/store/mlflow.db")
    with pytest.raises(UserError) as err:
        tracker.start("k", "n", "e", {}, {})
    message = str(err.value)
    assert "\n" not in message and dead in message and "sqlite:////data/store/mlflow.db" in message


def test_spooled_start_is_replayed_by_the_next_start_exactly_once(
        mlflow_server, s3_env, store, tmp_path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    offline = _tracker(dead, store, on_unreachable="spool")
    assert offline.start("spool/key", "spooled", "spooled", {"t": "1"}, {"lr": 0.5}) == ""
    for step in range(20):
        offline.log_metrics({"loss": 1.0 / (step + 1)}, step)
    (tmp_path / "note.txt").write_text("made while offline")
    offline.log_artifact(str(tmp_path / "note.txt"))
    offline.finish("FAILED")
    spool = offline.spool
    assert spool is not None and len(spool) >= 3  # start batch, metrics, artifact, terminate
    (tmp_path / "note.txt").unlink()  # the spool kept its own copy
    backup = tmp_path / "spool-backup"
    shutil.copytree(store.path(spool.prefix), backup)

    online = _tracker(mlflow_server.uri, store)
    run_id = online.start("spool/key", "spooled", "spooled", {"t": "1"}, {"lr": 0.5})
    assert run_id and len(spool) == 0
    # the offline process's "FAILED" ending is not applied while this process keeps the run going
    assert MlflowClient(tracking_uri=mlflow_server.uri).get_run(run_id).info.status == "RUNNING"
    for step in range(15, 25):  # resumed at step 15: 15..19 are already there
        online.log_metrics({"loss": 0.0}, step)
    online.finish()
    assert steps_of(mlflow_server.uri, run_id, "loss") == list(range(25))
    assert query.list_artifacts(mlflow_server.uri, run_id) == ["note.txt"]
    assert query.get_run(mlflow_server.uri, run_id)["params"] == {"lr": "0.5"}

    # A crash after the server acknowledged records but before they left the spool replays them again.
    shutil.rmtree(store.path(spool.prefix), ignore_errors=True)
    shutil.copytree(backup, store.path(spool.prefix))
    again = _tracker(mlflow_server.uri, store)
    assert again.start("spool/key", "spooled", "spooled", {"t": "1"}, {"lr": 0.5}) == run_id
    again.finish()
    assert steps_of(mlflow_server.uri, run_id, "loss") == list(range(25))

    # Resumed from step 20 while the server is away: the replay skips the steps the server already holds.
    offline_again = _tracker(dead, store, on_unreachable="spool")
    assert offline_again.start("spool/key", "spooled", "spooled", {"t": "1"}, {"lr": 0.5}) == run_id
    for step in range(20, 30):
        offline_again.log_metrics({"loss": -1.0}, step)
    offline_again.finish()
    last = _tracker(mlflow_server.uri, store)
    last.start("spool/key", "spooled", "spooled", {"t": "1"}, {"lr": 0.5})
    last.finish()
    assert steps_of(mlflow_server.uri, run_id, "loss") == list(range(30))
    values = {p["step"]: p["value"] for p in query.metric_history(mlflow_server.uri, run_id, "loss")}
    assert values[22] == 0.0 and values[27] == -1.0


@pytest.mark.parametrize("where", ["local", "s3"])
def test_replay_spool_sends_a_dead_run_leftovers(mlflow_server, s3_env, store, tmp_path, where) -> None:
    if where == "s3":  # the spool lives wherever the store does
        store = Store.open(f"{s3_env.make_bucket('spool-store')}/store")
    offline = _tracker(f"http://127.0.0.1:{free_port()}", store, on_unreachable="spool")
    offline.start(f"leftover/{where}", "leftover", "leftovers", {}, {"lr": 1})
    for step in range(5):
        offline.log_metrics({"loss": float(step)}, step)
    (tmp_path / "sample.txt").write_text("spooled sample")
    offline.log_artifact(str(tmp_path / "sample.txt"), "samples")
    offline.finish("KILLED")
    assert replay_spool(mlflow_server.uri, store, offline.spool.prefix, **FAST) >= 4
    run = query.find_run(mlflow_server.uri, "leftovers", f"leftover/{where}")
    assert run is not None and run["status"] == "KILLED" and run["params"] == {"lr": "1"}
    assert steps_of(mlflow_server.uri, run["run_id"], "loss") == list(range(5))
    assert query.list_artifacts(mlflow_server.uri, run["run_id"]) == ["samples/sample.txt"]
    assert len(offline.spool) == 0

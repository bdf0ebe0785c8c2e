"""`nightshift train` tracked in a real MLflow server whose artifacts live on a real S3 API."""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
import pytest

from tests.helpers.cli import nightshift


@pytest.mark.mlflow
@pytest.mark.s3
@pytest.mark.slow
def test_train_run_round_trips_through_mlflow_server_with_s3_artifacts(
        store_dir: Path, pg19_bytes: str, mlflow_server, s3_server) -> None:
    from mlflow.tracking import MlflowClient

    out = nightshift("--progress-seconds", "0.001", "train", "--dataset", pg19_bytes, "--model", "transformer:debug",
                     "--steps", "12", "--set", "eval_every=6", "--set", "log_every=3", "--set", "sample_tokens=8",
                     "--store", str(store_dir), "--tracking-uri", mlflow_server.uri, "--no-progress", "--json",
                     env=s3_server.env)
    result = json.loads(out.stdout)
    # the terminal without a TTY: our progress lines (step, loss, tokens/s, ETA; evaluations), nothing of MLflow's
    lines = out.stderr.splitlines()
    steps = [line for line in lines if re.search(r"transformer:debug step \d+/12 \(\d+%\)", line)]
    assert len(steps) >= 6 and "loss " in steps[-1] and " tok/s  eta " in steps[-1]
    assert any("step 6: val bits/byte" in line for line in lines)
    assert not [line for line in lines if "INFO" in line or "Warning" in line or "warn" in line.lower()], lines
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    experiment = client.get_experiment_by_name("local-pg19")
    assert experiment is not None
    mine = f"tags.`run.id` = '{result['run_id']}'"  # the session's server is shared with other tests
    runs = client.search_runs([experiment.experiment_id], filter_string=mine)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "transformer:debug@200KB" and run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["dataset.id"] == pg19_bytes and tags["model.family"] == "transformer"
    assert tags["model.variant"] == "debug" and tags["run.id"] == result["run_id"]
    assert tags["dataset.size_bytes"] == "200000" and tags["backend"] == "local"
    assert tags["model.id"] == result["model_id"] and len(tags["mlflow.source.git.commit"]) >= 7
    assert run.data.params["train.steps"] == "12" and run.data.params["model.config.n_layer"] == "2"
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in losses] == [3, 6, 9, 12]
    bpb = client.get_metric_history(run.info.run_id, "val/bpb")
    assert [m.step for m in bpb] == [6, 12]
    assert bpb[-1].value == pytest.approx(result["val_bpb"])
    names = {a.path for a in client.list_artifacts(run.info.run_id)} | {
        a.path for a in client.list_artifacts(run.info.run_id, "samples")}
    assert "result.json" in names and "samples/step_00000012.txt" in names
    # the artifacts really are objects in the S3 bucket behind the server
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mlflow").get("Contents", [])]
    assert any(k.endswith("result.json") for k in keys)
    # training the same config again is a no-op and does not create a second run
    nightshift("train", "--dataset", pg19_bytes, "--model", "transformer:debug", "--steps", "12",
               "--set", "eval_every=6", "--set", "log_every=3", "--set", "sample_tokens=8",
               "--store", str(store_dir), "--tracking-uri", mlflow_server.uri, "--no-progress", env=s3_server.env)
    assert len(client.search_runs([experiment.experiment_id], filter_string=mine)) == 1

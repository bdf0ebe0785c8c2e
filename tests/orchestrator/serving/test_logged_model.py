"""A tracked run, as an MLflow user sees it: standard tags, dataset inputs, system metrics, a logged model that
MLflow loads, serves (`mlflow models serve`) and registers, with its files in the server's S3 bucket."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import boto3
import pandas as pd
import pytest
import torch

from nightshift.orchestrator.errors import UserError
from tests.helpers.paths import ROOT
from tests.helpers.servers import VENV_BIN, free_port, stop_process, wait_http
from tests.orchestrator.serving.helpers import LoggedRun

pytestmark = [pytest.mark.mlflow, pytest.mark.s3, pytest.mark.slow]


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_run_carries_standard_tags_dataset_inputs_system_metrics_and_its_model(logged_run: LoggedRun,
                                                                                s3_server) -> None:
    run = _client(logged_run.uri).get_run(logged_run.mlflow_run_id)
    tags = run.data.tags
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert tags["mlflow.source.git.commit"] == head  # tracked via $MLFLOW_TRACKING_URI alone: no flag given
    assert tags["mlflow.source.name"] == "jobs/train.py" and tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.user"]
    inputs = {[t.value for t in d.tags if t.key == "mlflow.data.context"][0]: d.dataset
              for d in run.inputs.dataset_inputs}
    dataset_id = logged_run.result["dataset_id"]
    assert set(inputs) == {"training", "validation"}
    assert inputs["training"].name == dataset_id and dataset_id.endswith(inputs["training"].digest)
    assert json.loads(inputs["training"].profile)["bytes"] == 100_000
    assert json.loads(inputs["validation"].source)["uri"].endswith(f"{dataset_id}/manifest.json")
    system = {k for k in run.data.metrics if k.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system
    [output] = run.outputs.model_outputs
    assert output.step == logged_run.result["step"]
    model = _client(logged_run.uri).get_logged_model(output.model_id)
    assert model.name == "model" and model.status.to_int() == 2 and model.source_run_id == run.info.run_id  # READY
    assert model.params["family"] == "transformer" and float(model.params["val_bpb"]) > 0
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mlflow", Prefix="mlflow-artifacts").get("Contents", [])]
    assert any(output.model_id in k and k.endswith("artifacts/checkpoint.pt") for k in keys)


def test_runs_uri_loads_with_mlflow_and_the_checkpoint_with_weights_only(logged_run: LoggedRun, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    import mlflow.artifacts

    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged_run.uri)
    uri = f"runs:/{logged_run.mlflow_run_id}/model"
    model = mlflow.pyfunc.load_model(uri)
    out = model.predict(pd.DataFrame({"prompt": ["Once upon a time", "The sea"]}), params={"max_tokens": 6})
    assert len(out) == 2 and (out["finish_reason"] == "length").all()
    local = mlflow.artifacts.download_artifacts(f"{uri}/artifacts/checkpoint.pt", dst_path=str(tmp_path))
    state = torch.load(local, weights_only=True)
    assert state["step"] == logged_run.result["step"] and state["config"]["model"]["flavor"] == "debug"


def test_register_made_a_ready_version_and_bad_names_register_nothing(logged_run: LoggedRun, capsys) -> None:
    from nightshift.orchestrator.cli import main

    client = _client(logged_run.uri)
    [version] = client.search_model_versions(f"name = '{logged_run.registered}'")
    run = client.get_run(logged_run.mlflow_run_id)
    assert version.status == "READY" and version.run_id == logged_run.mlflow_run_id
    assert version.source == f"models:/{run.outputs.model_outputs[0].model_id}"
    assert logged_run.result["registered"]["uri"] == f"models:/{logged_run.registered}/1"
    before = {m.name for m in client.search_registered_models()}
    base = ["train", "--dataset", logged_run.result["dataset_id"], "--model", "transformer:debug", "--steps", "1",
            "--store", str(logged_run.store_dir)]
    for bad in ("a/b", " padded", "x" * 300):  # refused before training starts: nothing is trained
        assert main([*base, "--tracking-uri", logged_run.uri, "--register", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("nightshift: error: --register") and err.count("\n") == 1, err
    assert main([*base, "--tracking-uri", "none", "--register", "ok"]) == 2
    assert "needs MLflow tracking" in capsys.readouterr().err
    from nightshift.orchestrator.tracking.mlflow_outputs import register_tracked_run

    with pytest.raises(UserError, match="not tracked"):
        register_tracked_run(logged_run.uri, "no-such-run-000000000000", "never-made")
    assert {m.name for m in client.search_registered_models()} == before  # nothing half-registered


def test_mlflow_models_serve_answers_invocations(logged_run: LoggedRun, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    env = {**logged_run.env, "MLFLOW_TRACKING_URI": logged_run.uri, "PYTHONPATH": str(ROOT),
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # an activated venv: uvicorn on PATH
    proc = subprocess.Popen(
        [str(VENV_BIN / "mlflow"), "models", "serve", "-m", f"runs:/{logged_run.mlflow_run_id}/model",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        stdout=open(tmp_path / "serve.log", "wb"), stderr=subprocess.STDOUT, env={**os.environ, **env})  # noqa: SIM115 - the server writes it for its life
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", timeout=180, proc=proc)
        body = {"dataframe_records": [{"prompt": "It was a dark"}, {"prompt": "The old man"}],
                "params": {"max_tokens": 5, "seed": 1}}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            predictions = json.loads(response.read())["predictions"]
        assert [p["finish_reason"] for p in predictions] == ["length", "length"]
        assert all(isinstance(p["completion"], str) for p in predictions)
        # the same prediction in this process, through the same runs:/ URI
        import mlflow

        monkeypatch.setenv("MLFLOW_TRACKING_URI", logged_run.uri)
        local = mlflow.pyfunc.load_model(f"runs:/{logged_run.mlflow_run_id}/model")
        expected = local.predict(pd.DataFrame(body["dataframe_records"]), params=body["params"])
        assert [p["completion"] for p in predictions] == expected["completion"].tolist()
    finally:
        stop_process(proc)

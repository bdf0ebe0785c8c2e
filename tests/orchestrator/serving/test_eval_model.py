"""`nightshift eval RUN` logs the checkpoint it scored as an MLflow model of the run, and `--register`s it.

Against the session's real MLflow server (artifacts on a real S3 API): an
earlier checkpoint becomes `model-step<N>` (never the name the finished run's
own `model` resolves by), the final one is the run's `model`, and a
`--register` that cannot work fails in one line before any scoring.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import torch

from nightshift.orchestrator.cli import main
from tests.helpers.servers import free_port
from tests.orchestrator.serving.helpers import LoggedRun, tracked_run_id

pytestmark = [pytest.mark.mlflow, pytest.mark.s3, pytest.mark.slow]


def _eval(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, dict | None, str]:
    code = main(["eval", *args, "--max-bytes", "3000", "--no-references", "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if code == 0 else None, captured.err


def test_eval_logs_the_scored_checkpoint_as_a_model_and_registers_it(
        logged_run: LoggedRun, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    store, uri = str(logged_run.store_dir), logged_run.uri
    assert main(["train", "--dataset", logged_run.result["dataset_id"], "--model", "transformer:debug",
                 "--steps", "4", "--set", "checkpoint_every=2", "--set", "eval_every=0", "--set", "sample_tokens=4",
                 "--store", store, "--tracking-uri", uri, "--no-progress", "--json"]) == 0
    run_key = json.loads(capsys.readouterr().out)["run_id"]
    client = MlflowClient(tracking_uri=uri)
    mlflow_run = tracked_run_id(uri, run_key)
    [trained] = client.get_run(mlflow_run).outputs.model_outputs  # what training logged: `model`, step 4
    name = f"eval-{uuid.uuid4().hex[:8]}"

    code, out, err = _eval(capsys, run_key, "--step", "2", "--store", store, "--tracking-uri", uri, "--register", name)
    assert code == 0, err
    logged = out["mlflow_model"]
    assert logged["name"] == "model-step2" and logged["uri"] == f"runs:/{mlflow_run}/model-step2"
    model = client.get_logged_model(logged["model_id"])
    assert model.status.to_int() == 2 and model.source_run_id == mlflow_run  # READY, in the run's MLflow run
    assert model.params["step"] == "2" and float(model.params["val_bpb"]) == pytest.approx(out["val_bpb"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # what resolves runs:/ to the run's logged models
    local = mlflow.artifacts.download_artifacts(f"{logged['uri']}/artifacts/checkpoint.pt", dst_path=str(tmp_path))
    assert torch.load(local, weights_only=True)["step"] == 2  # the checkpoint eval scored, not the final one
    [version] = client.search_model_versions(f"name = '{name}'")
    assert version.source == f"models:/{model.model_id}" and version.status == "READY"
    assert logged["registered"]["uri"] == f"models:/{name}/1"
    outputs = {o.model_id: o.step for o in client.get_run(mlflow_run).outputs.model_outputs}
    assert outputs == {trained.model_id: 4, model.model_id: 2}  # the run's own `model` is untouched

    code, out, err = _eval(capsys, run_key, "--store", store, "--tracking-uri", uri)  # the final checkpoint
    assert code == 0, err
    assert out["mlflow_model"]["name"] == "model" and out["mlflow_model"]["model_id"] == trained.model_id
    assert len(client.get_run(mlflow_run).outputs.model_outputs) == 2  # kept, not logged twice

    before = {m.name for m in client.search_registered_models()}
    dead = f"http://127.0.0.1:{free_port()}"
    for args, says in ((["--tracking-uri", uri, "--register", "a/b"], "a registered model name"),
                       (["--tracking-uri", "none", "--register", "ok"], "tracking is off"),
                       (["--tracking-uri", dead, "--register", "ok"], "unreachable"),
                       (["--tracking-uri", uri, "--register", "ok", "--no-log-model"], "drop --no-log-model")):
        code, _, err = _eval(capsys, run_key, "--store", store, *args)
        assert code == 2 and err.startswith("nightshift: error: --register") and says in err, err
        assert "bits/byte" not in err and err.count("\n") == 1  # refused before any scoring
    assert {m.name for m in client.search_registered_models()} == before  # nothing half-registered

    code, out, err = _eval(capsys, run_key, "--store", store, "--tracking-uri", dead)  # no --register: a note
    assert code == 0 and "mlflow_model" not in out and out["val_bpb"] > 0, err

"""`ray start --head` + `ray job submit -- python jobs/train.py ...`: the job succeeds, the run is in MLflow.

With `--runtime-env infra/ray/runtime_env.yaml` instead of `--working-dir` (the README's command) the same
test passed once by hand (231 s: Ray builds the job's virtualenv and pip checks the pinned requirements);
CI submits with the working dir only, to stay under 30 minutes, and checks the runtime env with Ray's own
validation (tests/backends/test_infra.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nightshift.orchestrator.runs.config import build_run_config
from nightshift.orchestrator.runs.folders import RunDir
from nightshift.orchestrator.tracking import query
from nightshift.pipelines.store import Store
from tests.backends.helpers import copy_datasets
from tests.backends.ray_head import VENV_BIN, ray_head
from tests.helpers.paths import ROOT

pytestmark = [pytest.mark.ray, pytest.mark.mlflow, pytest.mark.slow]


def find_tracked(uri: str, run_key: str) -> dict | None:
    for name in query.experiment_names(uri):
        runs = query.runs_of_experiment(uri, name, f"tags.`{query.RUN_KEY_TAG}` = '{run_key}'")
        if runs:
            return runs[0]
    return None


def test_ray_job_submit_of_jobs_train_succeeds_and_is_tracked(tiny_data, mlflow_server, tmp_path: Path) -> None:
    store = copy_datasets(tiny_data, tmp_path / "store")
    flags = ["--dataset", tiny_data.dataset_id, "--model", "transformer:debug", "--steps", "6", "--seed", "5",
             "--set", "eval_every=0", "--set", "checkpoint_every=3", "--workers", "1",
             "--store", str(store), "--tracking-uri", mlflow_server.uri, "--json"]
    with ray_head(tmp_path) as head:
        proc = subprocess.run(
            [str(VENV_BIN / "ray"), "job", "submit", "--address", head.dashboard, "--working-dir", str(ROOT),
             "--", "python", "jobs/train.py", *flags],
            cwd=ROOT, env=head.env, capture_output=True, text=True, timeout=420)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "succeeded" in out, out[-4000:]

    config = build_run_config(tiny_data.dataset_id, "transformer:debug",
                              {"eval_every": "0", "checkpoint_every": "3"}, steps=6, seed=5)
    result = RunDir(Store.open(str(store)), config).result()
    assert result is not None and result["step"] == 6 and result["stop_reason"] == "finished"
    assert f'"run_id": "{config.run_id}"' in out  # --json printed the result into the job's logs
    tracked = find_tracked(mlflow_server.uri, config.run_id)
    assert tracked is not None, "the run is not in MLflow"
    assert tracked["status"] == "FINISHED"
    assert tracked["tags"]["backend"] == "ray"
    assert tracked["metrics"]["final/val_bpb"] == pytest.approx(result["val_bpb"])

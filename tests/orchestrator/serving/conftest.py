"""One tracked training run shared by the MLflow-model and server tests (session scope: trained once).

Trained the way a Ray job runs it (`python jobs/train.py`, local backend),
tracked through `$MLFLOW_TRACKING_URI` alone (no flag), into the session's
real MLflow server whose artifacts live on a real S3 API, and registered
with `--register`. The pg19 sample is reached through a folder named
`pg19-serve`, so its experiment (`local-pg19-serve`) is its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers.data import alias_source, prepare_pg19
from tests.helpers.paths import ROOT
from tests.orchestrator.serving.helpers import LoggedRun, tracked_run_id


@pytest.fixture(scope="session")
def logged_run(tmp_path_factory: pytest.TempPathFactory, pg19_dir: Path, mlflow_server, s3_server) -> LoggedRun:
    root = tmp_path_factory.mktemp("logged-run")
    store_dir = root / "store"
    source = alias_source(root, pg19_dir, "pg19-serve")
    dataset = prepare_pg19(store_dir, Path(source[len("local:"):]), max_bytes=100_000, valid_bytes=8_000)
    name = f"nightshift-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **s3_server.env, "MLFLOW_TRACKING_URI": mlflow_server.uri,
           "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"}
    env.pop("NIGHTSHIFT_GIT_COMMIT", None)  # the commit comes from git here
    proc = subprocess.run(
        [sys.executable, "jobs/train.py", "--backend", "local", "--dataset", dataset, "--model", "transformer:debug",
         "--steps", "6", "--set", "eval_every=3", "--set", "log_every=3", "--set", "sample_tokens=8",
         "--store", str(store_dir), "--register", name, "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    return LoggedRun(uri=mlflow_server.uri, mlflow_run_id=tracked_run_id(mlflow_server.uri, result["run_id"]),
                     result=result, store_dir=store_dir, registered=name, env=dict(s3_server.env))

"""What the serving tests know of the one tracked run they share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXPERIMENT = "local-pg19-serve"


@dataclass
class LoggedRun:
    uri: str  # the MLflow server
    mlflow_run_id: str
    result: dict  # `nightshift train --json`
    store_dir: Path
    registered: str  # the registered model name
    env: dict[str, str]  # what a client of the server needs (S3 endpoint and keys)


def tracked_run_id(uri: str, run_key: str) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`run.id` = '{run_key}'")
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0].info.run_id

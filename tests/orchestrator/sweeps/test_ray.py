"""`--backend ray`: cells as Ray tasks on a local Ray (127.0.0.1), nested under the same kind of parent run."""

from __future__ import annotations

from pathlib import Path

import pytest

from nightshift.orchestrator.runs.folders import find_run
from nightshift.orchestrator.sweeps.run import run_sweep
from nightshift.orchestrator.tracking.query import child_runs, get_run
from nightshift.pipelines.store import Store
from tests.helpers.data import alias_source
from tests.orchestrator.sweeps.helpers import tiny_spec


@pytest.mark.ray
@pytest.mark.mlflow
@pytest.mark.slow
def test_ray_backend_trains_every_cell_as_a_ray_task(tmp_path: Path, pg19_dir: Path, mlflow_server) -> None:
    store = Store.open(str(tmp_path / "store"))
    spec = tiny_spec(alias_source(tmp_path, pg19_dir, "pg19-ray"), sizes=(100_000,))
    outcome = run_sweep(spec, store, backend="ray", tracking_uri=mlflow_server.uri, progress=False)
    assert outcome.trained == 2 and outcome.failed == 0
    for cell in outcome.cells:
        run = find_run(store, cell["run_id"])
        assert run.status()["state"] == "finished" and run.result()["val_bpb"] == cell["val_bpb"]
    assert get_run(mlflow_server.uri, outcome.parent_run_id)["tags"]["backend"] == "ray"
    children = child_runs(mlflow_server.uri, outcome.parent_run_id)
    assert sorted(c["tags"]["run.id"] for c in children) == sorted(c["run_id"] for c in outcome.cells)
    assert {c["tags"]["backend"] for c in children} == {"ray"}
    # the same sweep on the local backend finds every cell finished: backends share the cells (by id)
    again = run_sweep(spec, store, tracking_uri=mlflow_server.uri, progress=False)
    assert again.skipped == 2 and again.trained == 0

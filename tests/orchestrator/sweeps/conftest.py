"""One tiny recorded sweep (2 sizes x 2 variants of raw-byte pg19) shared by the sweep and report tests.

The pg19 sample is reached through a folder of symlinks named `pg19-sweep`, so
the sweep's MLflow experiment (`local-pg19-sweep`) is its own and never mixes
with the runs other tests log to the same session MLflow server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nightshift.orchestrator.sweeps.run import run_sweep
from nightshift.pipelines.store import Store
from tests.helpers.data import alias_source
from tests.orchestrator.sweeps.helpers import (
    Recorded,
    tiny_spec,
)


@pytest.fixture(scope="session")
def recorded_sweep(tmp_path_factory: pytest.TempPathFactory, pg19_dir: Path, mlflow_server) -> Recorded:
    root = tmp_path_factory.mktemp("sweep")
    store = Store.open(str(root / "store"))
    spec = tiny_spec(alias_source(root, pg19_dir, "pg19-sweep"))
    report_dir = root / "report"
    outcome = run_sweep(spec, store, tracking_uri=mlflow_server.uri, progress=False, threads=1,
                        report_dir=str(report_dir))
    return Recorded(store=store, spec=spec, outcome=outcome, uri=mlflow_server.uri, report_dir=report_dir,
                    root=root)

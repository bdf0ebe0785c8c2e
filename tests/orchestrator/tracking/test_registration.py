"""`--register` when the registry fails after it made the model version: nothing half-registered is left.

A real MLflow server creates the version, commits it, then records it on the
logged model (`mlflow.modelVersions`); here that second write fails for real,
inside the server's own database (a trigger refuses it, as a full disk or a
lost database connection would), so the server answers with an error while
the version it made stays in the registry (MLflow's handler does not undo it).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nightshift.orchestrator.tracking.mlflow_outputs import (
    REGISTRATION_TAG,
    register_run_model,
)

pytestmark = [pytest.mark.mlflow]


def _logged_model(client, experiment: str) -> tuple[str, str]:
    """A run with a READY logged model `model` (what a finished training run has); (run id, model id)."""
    from mlflow.entities import LoggedModelStatus

    experiment_id = client.create_experiment(experiment)
    run_id = client.create_run(experiment_id).info.run_id
    model = client.create_logged_model(experiment_id, name="model", source_run_id=run_id)
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    return run_id, model.model_id


@contextmanager
def refused_version_bookkeeping(db: Path, model_id: str) -> Iterator[None]:
    """The server's write of `mlflow.modelVersions` on this logged model fails (insert or update);
    `made_versions` records every version the server inserted meanwhile."""
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE made_versions (name TEXT, version INTEGER)")
        conn.execute("CREATE TRIGGER record_version AFTER INSERT ON model_versions "
                     "BEGIN INSERT INTO made_versions VALUES (NEW.name, NEW.version); END")
        for event in ("INSERT", "UPDATE"):
            conn.execute(f"CREATE TRIGGER refuse_{event.lower()} BEFORE {event} ON logged_model_tags "
                         f"WHEN NEW.model_id = '{model_id}' AND NEW.tag_key = 'mlflow.modelVersions' "
                         "BEGIN SELECT RAISE(ABORT, 'disk I/O error (provoked)'); END")
    try:
        yield
    finally:
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TRIGGER IF EXISTS refuse_insert")
            conn.execute("DROP TRIGGER IF EXISTS refuse_update")
            conn.execute("DROP TRIGGER IF EXISTS record_version")
            conn.execute("DROP TABLE IF EXISTS made_versions")


def test_a_registration_failing_after_the_version_was_made_leaves_nothing_behind(
        mlflow_server) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.uri)
    tag = uuid.uuid4().hex[:8]
    run_id, model_id = _logged_model(client, f"registration-{tag}")
    fresh, existing = f"fresh-{tag}", f"existing-{tag}"
    first = register_run_model(client, run_id, existing)  # a model that already has a good version
    assert first["version"] == "1"

    with refused_version_bookkeeping(mlflow_server.backend_db, model_id):
        for name in (fresh, existing):
            with pytest.raises(MlflowException) as failed:
                register_run_model(client, run_id, name)
            assert "provoked" in str(failed.value)
        with sqlite3.connect(mlflow_server.backend_db) as conn:
            made = conn.execute("SELECT name, version FROM made_versions").fetchall()
            left = conn.execute("SELECT name, version FROM model_versions WHERE name IN (?, ?) "
                                "AND current_stage != 'Deleted_Internal'", (fresh, existing)).fetchall()
    assert {n for n, _ in made} == {fresh, existing} and len(made) >= 2, made  # the server made versions ...
    assert left == [(existing, 1)], left  # ... and they are gone; the good one is kept
    names = {m.name for m in client.search_registered_models(f"name LIKE '%{tag}'")}
    assert names == {existing}  # the model the failed call created is gone too
    [kept] = client.search_model_versions(f"name = '{existing}'")
    assert kept.version == "1" and kept.status == "READY" and REGISTRATION_TAG in kept.tags

    again = register_run_model(client, run_id, fresh)  # the failure was the registry's, not the name's
    assert again["version"] == "1" and again["uri"] == f"models:/{fresh}/1"

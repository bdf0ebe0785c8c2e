"""One tracking-URI rule everywhere: --tracking-uri > $MLFLOW_TRACKING_URI > the store's sqlite DB; and the
launcher's commit, entry point and user reach workers that have no .git."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from nightshift.orchestrator.tracking import build_tracker
from nightshift.orchestrator.tracking.uri import (
    TRACKING_URI_ENV,
    explicit_tracking_uri,
    resolve_tracking_uri,
)
from nightshift.pipelines.store import Store
from tests.helpers.paths import ROOT


def test_flag_beats_environment_beats_the_store_db(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACKING_URI_ENV, raising=False)
    assert resolve_tracking_uri(None, store) == f"sqlite:///{store.path('mlflow.db')}"
    monkeypatch.setenv(TRACKING_URI_ENV, "http://mlflow.example:5000")
    assert resolve_tracking_uri(None, store) == "http://mlflow.example:5000"
    assert resolve_tracking_uri("sqlite:////tmp/x.db", store) == "sqlite:////tmp/x.db"
    assert resolve_tracking_uri("OFF", store) == "none"  # off at the winning level
    monkeypatch.setenv(TRACKING_URI_ENV, "none")
    assert resolve_tracking_uri(None, store) == "none"
    assert resolve_tracking_uri("http://flag:1", store) == "http://flag:1"
    monkeypatch.setenv(TRACKING_URI_ENV, "   ")  # blank means unset
    assert resolve_tracking_uri(None, store) == f"sqlite:///{store.path('mlflow.db')}"
    assert resolve_tracking_uri(None, "s3://bucket/prefix", environ={}) is None  # no sqlite on S3
    assert explicit_tracking_uri(None, {TRACKING_URI_ENV: "http://a:1"}) == "http://a:1"
    assert explicit_tracking_uri(None, {}) is None


def test_the_tracker_and_every_command_follow_the_rule(store: Store, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from nightshift.orchestrator.commands.common import tracking_uri_of

    elsewhere = "http://127.0.0.1:9"  # never contacted: the tracker is built, not started
    monkeypatch.setenv(TRACKING_URI_ENV, elsewhere)
    tracker = build_tracker(None, store, rank=0)
    assert tracker.uri == elsewhere  # the environment, not the store's DB
    assert build_tracker("none", store, rank=0).__class__.__name__ == "NoopTracker"
    assert tracking_uri_of(argparse.Namespace(tracking_uri=None)) == elsewhere  # what launchers hand workers
    assert tracking_uri_of(argparse.Namespace(tracking_uri="http://flag:1")) == "http://flag:1"


def test_ui_prints_a_server_url_from_the_environment(store: Store, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    from nightshift.orchestrator.cli import main

    monkeypatch.setenv(TRACKING_URI_ENV, "http://127.0.0.1:5999")
    assert main(["ui", "--store", store.url]) == 0
    assert "MLflow UI: http://127.0.0.1:5999" in capsys.readouterr().out


def test_commit_source_and_user_come_from_the_launcher_when_handed(monkeypatch: pytest.MonkeyPatch) -> None:
    from nightshift.orchestrator.backends.ray_backend import forwarded_env
    from nightshift.orchestrator.runs.tags import (
        COMMIT_ENV,
        SOURCE_ENV,
        USER_ENV,
        git_commit,
        source_name,
        source_tags,
    )

    for name in (COMMIT_ENV, SOURCE_ENV, USER_ENV):
        monkeypatch.delenv(name, raising=False)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert git_commit() == head
    assert source_name(["/venv/bin/nightshift", "-v", "train", "--model", "x"]) == "nightshift train"
    assert source_name(["/x/orchestrator/cli.py", "sweep"]) == "nightshift sweep"
    assert source_name(["/app/jobs/train.py", "--dataset", "d"]) == "jobs/train.py"
    handed = forwarded_env()  # what every Ray worker (Ray Train, sweep tasks) gets
    assert handed[COMMIT_ENV] == head and handed[SOURCE_ENV] and handed[USER_ENV]
    monkeypatch.setenv(COMMIT_ENV, "f" * 40)  # a worker without .git: the launcher's commit wins
    monkeypatch.setenv(SOURCE_ENV, "jobs/giant.py")
    monkeypatch.setenv(USER_ENV, "alice")
    assert source_tags("modal") == {"mlflow.source.git.commit": "f" * 40, "mlflow.source.name": "jobs/giant.py",
                                    "mlflow.source.type": "JOB", "mlflow.user": "alice"}


@pytest.mark.modal
def test_the_modal_image_carries_the_launchers_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    from nightshift.orchestrator.runs.tags import COMMIT_ENV, SOURCE_ENV
    from tests.helpers.giant_app import load_giant

    monkeypatch.delenv(COMMIT_ENV, raising=False)
    monkeypatch.delenv(SOURCE_ENV, raising=False)
    giant = load_giant()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert giant.launcher_env()[COMMIT_ENV] == head and giant.launcher_env()[SOURCE_ENV] == "jobs/giant.py"
    monkeypatch.setenv(COMMIT_ENV, head)  # inside the container: read back from the image's environment
    assert giant.launcher_env()[COMMIT_ENV] == head

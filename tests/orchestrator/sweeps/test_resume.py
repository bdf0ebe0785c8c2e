"""A sweep stopped in the middle of a cell: the re-run resumes that cell from its checkpoint, under the same parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
from nightshift.orchestrator.runs.folders import find_run
from nightshift.orchestrator.sweeps.record import read_sweep
from nightshift.orchestrator.tracking.jsonl import read_history
from nightshift.orchestrator.tracking.query import (
    child_runs,
    get_run,
    runs_of_experiment,
)
from nightshift.pipelines.store import Store
from tests.helpers.cli import nightshift
from tests.helpers.data import alias_source
from tests.helpers.paths import ROOT


@pytest.mark.slow
@pytest.mark.mlflow
def test_interrupted_sweep_resumes_the_unfinished_cell_from_its_checkpoint(tmp_path: Path, pg19_dir: Path,
                                                                           mlflow_server) -> None:
    store_dir, uri = tmp_path / "store", mlflow_server.uri
    args = ["sweep", "--source", alias_source(tmp_path, pg19_dir, "pg19-resume"), "--sizes", "100KB",
            "--models", "transformer:debug,macro_unit:small", "--steps", "8", "--evals", "2", "--valid-bytes", "8KB",
            "--tokenizer", "bytes", "--set", "sample_tokens=8", "--set", "log_every=2",
            "--set", "checkpoint_every=4", "--threads", "1", "--store", str(store_dir), "--tracking-uri", uri,
            "--no-progress", "--no-report"]
    # hold still after the step-4 checkpoint of the first cell, then stop the sweep like Ctrl-C / a preemption
    env = {**os.environ, "NIGHTSHIFT_FAULTS": "pause@4:120"}
    proc = subprocess.Popen([sys.executable, "-m", "nightshift.orchestrator.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline:
        pointers = list(store_dir.glob("runs/*/*/*/checkpoints/latest.json"))
        if pointers and json.loads(pointers[0].read_text())["step"] == 4:
            break
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the first cell never reached its step-4 checkpoint")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err.decode()[-2000:]

    store = Store.open(str(store_dir))
    sweep_id = store.listdir("sweeps")[0]
    cells = read_sweep(store, sweep_id)["cells"]
    states = [c["state"] for c in cells]
    assert states == ["interrupted", "pending"]  # the second cell never started
    first = cells[0]
    stopped_at = CheckpointTrail(store, tuple(first["run_path"].split("/"))).latest()["step"]
    assert 4 <= stopped_at < 8
    parent = runs_of_experiment(uri, "local-pg19-resume", "tags.`nightshift.kind` = 'sweep'")
    assert len(parent) == 1 and parent[0]["status"] == "KILLED"

    nightshift(*args)  # the same command again
    cells = read_sweep(store, sweep_id)["cells"]
    assert [c["state"] for c in cells] == ["finished", "finished"]
    trail = CheckpointTrail(store, tuple(first["run_path"].split("/"))).trail()
    final = trail[-1]
    assert final["step"] == 8 and final["parent_step"] == stopped_at  # continued from the checkpoint, not restarted
    assert find_run(store, first["run_id"]).result()["step"] == 8
    starts = [r for r in read_history(store, f"{first['run_path']}/tracking") if r["kind"] == "start"]
    assert len(starts) == 2
    parents = runs_of_experiment(uri, "local-pg19-resume", "tags.`nightshift.kind` = 'sweep'")
    assert [p["run_id"] for p in parents] == [parent[0]["run_id"]]  # reopened, not a second parent
    assert get_run(uri, parent[0]["run_id"])["status"] == "FINISHED"
    children = child_runs(uri, parent[0]["run_id"])
    assert sorted(c["tags"]["run.id"] for c in children) == sorted(c["run_id"] for c in cells)
    resumed = next(c for c in children if c["tags"]["run.id"] == first["run_id"])
    assert resumed["tags"]["nightshift.starts"] == "2" and resumed["status"] == "FINISHED"

"""SIGKILL at many random instants (checkpoint writes included); every resume continues exactly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
from nightshift.orchestrator.runs.folders import find_run
from nightshift.pipelines.store import Store
from tests.helpers.cli import nightshift
from tests.helpers.data import prepare_pg19
from tests.helpers.paths import ROOT

ARGS = ["train", "--model", "transformer:debug", "--steps", "24", "--set", "checkpoint_every=2",
        "--set", "eval_every=0", "--set", "sample_tokens=4", "--tracking-uri", "none", "--no-progress", "--json"]


def _weights(store_dir: Path, run_id: str) -> dict[str, torch.Tensor]:
    store = Store.open(str(store_dir))
    return CheckpointTrail(store, find_run(store, run_id).config.run_path).load()["model"]


@pytest.mark.slow
def test_kill_9_anywhere_then_resume_matches_an_uninterrupted_run(tmp_path: Path, pg19_dir: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    dataset_id = prepare_pg19(straight, pg19_dir)
    assert prepare_pg19(killed, pg19_dir) == dataset_id
    done = json.loads(nightshift(*ARGS, "--dataset", dataset_id, "--store", str(straight)).stdout)

    rng = random.Random(1234)
    kills, attempts = [], 0
    while attempts < 12:
        attempts += 1
        proc = subprocess.Popen([sys.executable, "-m", "nightshift.orchestrator.cli", *ARGS, "--dataset", dataset_id,
                                 "--store", str(killed)], cwd=ROOT,
                                env={**os.environ, "NIGHTSHIFT_FAULTS": "slow@0:0.12,slowckpt@0:0.08"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # wait until this process is training (it rewrites status.json when its loop starts), then a random instant
        started, deadline = time.time(), time.time() + 120
        while time.time() < deadline and proc.poll() is None and not any(
                p.stat().st_mtime >= started for p in killed.glob("runs/*/*/*/status.json")):
            time.sleep(0.05)
        time.sleep(rng.uniform(0.05, 1.5))
        if proc.poll() is not None:  # finished before the kill: the run is complete
            out, err = proc.communicate()
            assert proc.returncode == 0, err[-2000:]
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        pointers = list(killed.glob("runs/*/*/*/checkpoints/latest.json"))
        step = json.loads(pointers[0].read_text())["step"] if pointers else None
        kills.append(step)
        if step is not None:  # the newest checkpoint always loads and verifies
            store = Store.open(str(killed))
            state = CheckpointTrail(store, find_run(store, done["run_id"]).config.run_path).load()
            assert state["progress"]["step"] == step
    final = json.loads(nightshift(*ARGS, "--dataset", dataset_id, "--store", str(killed)).stdout)
    assert final["step"] == 24 and final["run_id"] == done["run_id"]
    a, b = _weights(straight, done["run_id"]), _weights(killed, done["run_id"])
    assert all(torch.equal(a[k], b[k]) for k in a), f"weights differ after kills at steps {kills}"
    print(f"\nkill points tried: {len(kills)} (latest checkpoint at each kill: {kills})")
    assert len(kills) >= 3

"""`--backend ray`: Ray Train TorchTrainer (gloo DDP) on a real local Ray, the same trainer loop as local runs."""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from nightshift.orchestrator.backends import launch
from nightshift.orchestrator.backends.ray_backend import (
    POINTER_FILE,
    RESULT_FILE,
    run_on_ray,
)
from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import build_run_config
from nightshift.pipelines.store import Store
from tests.backends.helpers import copy_datasets
from tests.backends.procs import alive, matching

SETS = {"checkpoint_every": "6", "eval_every": "0", "log_every": "2", "eval_batch_size": "32"}


def tiny_config(dataset_id: str, steps: int, **extra: str):
    return build_run_config(dataset_id, "transformer:debug", {**SETS, **extra}, steps=steps, seed=3)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.s3
def test_two_ray_workers_on_an_s3_store_match_one_local_process_with_the_same_global_batch(
        ray_local, s3_env, tiny_data, tmp_path: Path) -> None:
    config = tiny_config(tiny_data.dataset_id, steps=12)
    one = launch(config, Store.open(str(copy_datasets(tiny_data, tmp_path / "one"))), tracking_uri="none",
                 progress=False)
    two_store = Store.open(s3_env.make_bucket("ddp") + "/store")
    two_store.fs.put(str(tiny_data.store_dir / "datasets"), two_store.path("datasets"), recursive=True)
    two = run_on_ray(config, two_store.url, workers=2, tracking_uri="none")

    assert two["run_id"] == one["run_id"] and two["ray"]["world_size"] == 2
    assert two["step"] == one["step"] == 12 and two["tokens"] == one["tokens"]
    # It really trained (uniform over 257 byte ids is 8.006 bits/byte) ...
    assert one["val_bpb"] < 7.5
    # ... and DDP over two gloo ranks of 4 sequences equals one process of 8 (same windows, averaged grads).
    assert math.isclose(two["val_bpb"], one["val_bpb"], rel_tol=1e-3)
    trail = CheckpointTrail(two_store, config.run_path).trail()
    assert [m["step"] for m in trail] == [6, 12]
    # Ray knows each checkpoint by a pointer into our store, never a copy of the state.
    pointers = sorted(two_store.fs.glob(two_store.path("ray", config.run_id, "checkpoint_*", POINTER_FILE)))
    assert pointers and all(two_store.fs.size(p) < 2000 for p in pointers)
    results = two_store.fs.glob(two_store.path("ray", config.run_id, "checkpoint_*", RESULT_FILE))
    assert [json.loads(two_store.fs.cat_file(p))["step"] for p in results] == [12]


@pytest.mark.ray
@pytest.mark.slow
def test_a_killed_worker_restarts_from_the_last_checkpoint(ray_local, tiny_data, fresh_store: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Every rank pauses 6 s after step 8 (checkpoint at 6): the window in which a worker is killed.
    monkeypatch.setenv("NIGHTSHIFT_FAULTS", "pause@8:6")
    config = tiny_config(tiny_data.dataset_id, steps=18)
    store = Store.open(str(fresh_store))
    trail = CheckpointTrail(store, config.run_path)
    outcome: dict = {}

    def drive() -> None:
        try:
            outcome["result"] = run_on_ray(config, store.url, workers=2, tracking_uri="none", max_failures=2)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    deadline = time.time() + 150
    while (trail.latest() or {}).get("step", 0) < 6:
        assert time.time() < deadline and driver.is_alive(), f"no checkpoint at step 6: {outcome}"
        time.sleep(0.2)
    time.sleep(1.0)  # inside the pause after step 8
    workers = matching("RayTrainWorker")  # only the Ray this test process started
    assert len(workers) == 2, workers
    victim = workers[-1]
    os.kill(victim, signal.SIGKILL)  # no cleanup, like an OOM kill or a lost node
    driver.join(timeout=240)
    assert not driver.is_alive(), "the Ray run did not finish after the restart"
    assert "error" not in outcome, outcome.get("error")

    result = outcome["result"]
    assert result["stop_reason"] == "finished" and result["step"] == 18
    assert result["ray"]["resumed_from_step"] == 6  # the restarted group resumed, it did not start over
    # (Ray Train's own checkpoint record can lag the kill; our trail in the store is what resume uses)
    assert not alive(victim)
    steps = [m["step"] for m in trail.trail()]
    assert steps == [6, 12, 18]
    assert trail.meta(12)["parent_step"] == 6
    assert result["val_bpb"] is not None and result["val_bpb"] < 8.0


def test_batch_that_does_not_split_over_workers_is_a_user_error_before_any_worker_starts(tiny_data,
                                                                                         fresh_store: Path) -> None:
    config = tiny_config(tiny_data.dataset_id, steps=2)  # batch_size 8
    with pytest.raises(UserError, match="batch_size=8 must be divisible by workers x grad_accum = 3 x 1"):
        run_on_ray(config, str(fresh_store), workers=3)


def test_a_fraction_of_a_gpu_per_nccl_rank_is_refused_before_any_worker_starts(tiny_data, fresh_store: Path) -> None:
    config = tiny_config(tiny_data.dataset_id, steps=2)
    with pytest.raises(UserError, match="--gpus-per-worker 0.5: a fraction of a GPU puts several NCCL ranks"):
        run_on_ray(config, str(fresh_store), workers=2, gpus_per_worker=0.5)
    with pytest.raises(UserError, match="--gpus-per-worker 1.5: accepted: 0 or a whole number"):
        run_on_ray(config, str(fresh_store), workers=2, gpus_per_worker=1.5)

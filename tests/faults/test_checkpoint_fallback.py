"""A truncated or corrupt latest checkpoint: resume falls back to the newest valid one, says so, records it.

The same `Trainer.restore` runs under `--resume`, a sweep's rerun, a Ray restart
and a Modal retry (all go through `train_in_process`); eval and sample name
the checkpoint they used.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from nightshift.orchestrator.tracking import default_tracking_uri, query
from nightshift.pipelines.store import Store
from tests.faults.helpers import (
    STEPS,
    Reference,
    interrupted_run,
    run_config,
    same_weights,
    weights,
)


def _run_dir(store: Path, run_id: str) -> Path:
    return next(store.glob(f"runs/*/*/{run_id}"))


def test_resume_falls_back_past_a_truncated_latest_checkpoint(
        store_copy: tuple[Path, str], reference: Reference, cli, caplog: pytest.LogCaptureFixture) -> None:
    store, dataset_id = store_copy
    config = run_config(dataset_id)
    interrupted_run(store, config, at_step=6)
    latest = _run_dir(store, config.run_id) / "checkpoints" / "step_00000006" / "state.pt"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 3])  # a write cut short

    with caplog.at_level(logging.WARNING):
        run = cli("train", "--resume", config.run_id, "--store", str(store), "--no-progress", "--json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["step"] == STEPS and same_weights(weights(store, config.run_id), reference.weights)
    said = [r.getMessage() for r in caplog.records if "newest one that loads" in r.getMessage()]
    assert said and "step 4" in said[0] and "step_00000006" in said[0] and "corrupt" in said[0], caplog.text

    event = json.loads((_run_dir(store, config.run_id) / "events" / "checkpoint_fallback_00000004.json").read_text())
    assert event["restored_step"] == 4 and "step_00000006" in event["skipped"][0]
    uri = default_tracking_uri(Store.open(str(store)))  # the embedded MLflow the resumed run tracked into
    (experiment,) = [name for name in query.experiment_names(uri) if name != "Default"]
    tagged = json.loads(query.find_run(uri, experiment, config.run_id)["tags"]["nightshift.event.checkpoint_fallback"])
    assert tagged["restored_step"] == 4


def test_damaged_pointer_then_corrupt_final_checkpoint_eval_and_sample_say_what_they_used(
        store_copy: tuple[Path, str], reference: Reference, cli, caplog: pytest.LogCaptureFixture) -> None:
    store, dataset_id = store_copy
    s = str(store)
    config = run_config(dataset_id)
    interrupted_run(store, config, at_step=6)
    pointer = _run_dir(store, config.run_id) / "checkpoints" / "latest.json"
    pointer.write_text('{"step": 6, "pa')  # torn pointer: the trail still lists every complete checkpoint

    with caplog.at_level(logging.WARNING):
        run = cli("train", "--resume", config.run_id, "--store", s, "--tracking-uri", "none", "--no-progress",
                  "--json")
    assert run.code == 0 and json.loads(run.out)["step"] == STEPS and "latest.json is damaged" in caplog.text
    assert same_weights(weights(store, config.run_id), reference.weights)

    final = _run_dir(store, config.run_id) / "checkpoints" / "step_00000008" / "state.pt"
    data = bytearray(final.read_bytes())
    data[len(data) // 2] ^= 0xFF  # bit rot in the newest checkpoint
    final.write_bytes(bytes(data))
    ev = cli("eval", config.run_id, "--store", s, "--json", "--max-bytes", "2000")
    out = json.loads(ev.out)
    assert out["step"] == 6 and out["checkpoint"].endswith("step_00000006/state.pt")
    assert "step_00000008" in out["skipped_checkpoints"][0] and "corrupt" in out["skipped_checkpoints"][0]
    assert "checkpoint step 6" in ev.err and "passed over" in ev.err
    sample = cli("sample", config.run_id, "--store", s, "--tokens", "4", "--json")
    assert json.loads(sample.out)["step"] == 6 and "checkpoint step 6" in sample.err

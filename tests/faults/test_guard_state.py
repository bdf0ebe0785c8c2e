"""The divergence guard's loss history and rollback record survive a restart (they are in the checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.training.faults import ENV as FAULTS
from nightshift.orchestrator.training.trainer import Trainer
from nightshift.pipelines.store import Store
from tests.faults.helpers import interrupted_run, run_config


def test_resumed_run_detects_a_spike_at_its_first_step(store_copy: tuple[Path, str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store, dataset_id = store_copy
    config = run_config(dataset_id, steps=16, checkpoint_every="4")
    interrupted_run(store, config, at_step=12)  # 12 losses in the guard's history, saved with the checkpoint
    monkeypatch.setenv(FAULTS, "spike@13:100")  # the first step after the restart
    result = Trainer(config, Store.open(str(store)), progress_bar=False).run()
    assert result["step"] == 16 and result["rollbacks"] == 1
    event = json.loads(next(store.glob("runs/*/*/*/events/rollback_00000013.json")).read_text())
    assert event["restored_step"] == 12 and "spike" in event["reason"]


def test_max_rollbacks_counts_across_restarts(store_copy: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    store, dataset_id = store_copy
    config = run_config(dataset_id, steps=16, checkpoint_every="4", max_rollbacks="1", rollback_period="100",
                        rollback_skip="0")
    monkeypatch.setenv(FAULTS, "nan@6")
    first = interrupted_run(store, config, at_step=8)
    assert first.state.rollbacks == 1
    monkeypatch.setenv(FAULTS, "nan@10")  # a second divergence, in the next process, within rollback_period
    with pytest.raises(UserError, match="after 1 rollbacks within 100 steps"):
        Trainer(config, Store.open(str(store)), progress_bar=False).run()

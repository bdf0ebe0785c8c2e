"""The JSONL history in the store: readable without a server, resumable, same exactly-once rule."""

from __future__ import annotations

import pytest

from nightshift.orchestrator.tracking import JsonlTracker, metric_series, read_history
from nightshift.orchestrator.tracking.sanitize import REDACTED
from nightshift.pipelines.store import Store


def _log(tracker: JsonlTracker, steps: range, scale: float = 1.0) -> None:
    for step in steps:
        tracker.log_metrics({"loss": scale / (step + 1), "lr": 0.1}, step)


def test_history_round_trips_and_redacts(store: Store) -> None:
    tracker = JsonlTracker(store, "runs/d/m/r/tracking")
    tracker.start("d/m/0", "holo-s0", "pg19", {"nightshift.family": "holo"},
                  {"train": {"lr": 0.1}, "hf_token": "hf_" + "x1" * 20})
    _log(tracker, range(10))
    tracker.log_event("rollback", 7, {"to_step": 5, "reason": "nan"})
    tracker.finish()
    records = read_history(store, "runs/d/m/r/tracking")
    start = records[0]
    assert start["kind"] == "start" and start["params"] == {"train.lr": "0.1", "hf_token": REDACTED}
    assert [p["step"] for p in metric_series(records, "loss")] == list(range(10))
    assert metric_series(records, "loss")[3]["value"] == pytest.approx(0.25)
    assert [p["step"] for p in metric_series(records, "events/rollback")] == [7]
    assert any(r["kind"] == "event" and r["detail"] == {"to_step": 5, "reason": "nan"} for r in records)


def test_resumed_history_keeps_each_step_once(store: Store) -> None:
    first = JsonlTracker(store, "h")
    first.start("k", "n", "e", {}, {})
    _log(first, range(0, 10))
    first.flush()  # then the process dies without finish()
    second = JsonlTracker(store, "h")
    second.start("k", "n", "e", {}, {})
    _log(second, range(6, 15), scale=100.0)  # resumed from a checkpoint at step 6
    second.finish()
    series = metric_series(read_history(store, "h"), "loss")
    assert [p["step"] for p in series] == list(range(15))
    assert series[8]["value"] == pytest.approx(1 / 9)  # the first value of a step wins
    assert series[12]["value"] == pytest.approx(100 / 13)


@pytest.mark.s3
def test_history_on_s3(s3_env, tmp_path) -> None:
    bucket = s3_env.make_bucket("jsonl-history")
    store = Store.open(f"{bucket}/store")
    tracker = JsonlTracker(store, "runs/r/tracking", max_buffer=5)
    tracker.start("k", "n", "e", {}, {"a": 1})
    _log(tracker, range(12))  # several parts: object stores cannot append
    tracker.finish()
    assert len([n for n in store.listdir("runs/r/tracking") if n.startswith("history-")]) >= 3
    resumed = JsonlTracker(Store.open(f"{bucket}/store"), "runs/r/tracking")
    resumed.start("k", "n", "e", {}, {})
    _log(resumed, range(10, 14))
    resumed.finish()
    steps = [p["step"] for p in metric_series(read_history(store, "runs/r/tracking"), "loss")]
    assert steps == list(range(14))

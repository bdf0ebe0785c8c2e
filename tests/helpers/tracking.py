"""Fast tracker timings and readers that go through MlflowClient, for tracking and fault tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# Short intervals so outage/recovery happens within a test; production defaults are seconds.
FAST: dict[str, Any] = {"flush_interval_s": 0.1, "retry_interval_s": 0.3, "probe_timeout_s": 1.0,
                        "flush_timeout_s": 120.0}


def steps_of(uri: str, run_id: str, key: str) -> list[int]:
    """Every logged step of one metric, duplicates included, read through the MLflow client."""
    from mlflow.tracking import MlflowClient

    return sorted(m.step for m in MlflowClient(tracking_uri=uri).get_metric_history(run_id, key))


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout}s")

"""Experiment tracking behind a small `Tracker` interface (levanter-style); MLflow is one backend.

The trainer imports from here and never imports mlflow: `build_tracker(...)`
returns MLflow (+ a JSONL history in the store) on rank 0 and, elsewhere, a
tracker that logs nothing but its node's system metrics (`nodes`).
`MlflowTracker` lives in `mlflow_tracker` and is imported only when
MLflow is actually used; `query` reads runs back as plain dicts.
"""

from nightshift.orchestrator.tracking.base import (
    PARENT_RUN_TAG,
    RUN_KEY_TAG,
    CompositeTracker,
    NoopTracker,
    RunStatus,
    Tracker,
)
from nightshift.orchestrator.tracking.factory import build_tracker, default_artifact_root, default_tracking_uri
from nightshift.orchestrator.tracking.jsonl import JsonlTracker, metric_series, read_history
from nightshift.orchestrator.tracking.sanitize import flatten, sanitize_params, sanitize_tags

__all__ = [
    "PARENT_RUN_TAG", "RUN_KEY_TAG", "CompositeTracker", "JsonlTracker", "NoopTracker", "RunStatus", "Tracker",
    "build_tracker", "default_artifact_root", "default_tracking_uri", "flatten", "metric_series",
    "read_history", "sanitize_params", "sanitize_tags",
]

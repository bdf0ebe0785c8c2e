"""Pick the tracker for a process: MLflow (+ a JSONL history in the store) on rank 0, node metrics elsewhere.

The default needs no setup: a sqlite tracking DB and an artifact folder inside
the local store (`<store>/mlflow.db`, `<store>/mlflow-artifacts`), which
`nightshift ui` opens. MLflow 3 refuses a plain folder as a tracking store,
hence sqlite. `--tracking-uri http://...` points at a server instead.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Sequence
from typing import Any, Literal

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.tracking.base import CompositeTracker, NoopTracker, Tracker
from nightshift.orchestrator.tracking.jsonl import JsonlTracker
from nightshift.orchestrator.tracking.naming import RunNaming, named
from nightshift.orchestrator.tracking.nodes import NodeMetricsTracker
from nightshift.orchestrator.tracking.uri import (  # noqa: F401 - DISABLED, TRACKING_DB re-exported for callers
    DISABLED,
    TRACKING_DB,
    default_tracking_uri,
    is_disabled,
    open_store,
    resolve_tracking_uri,
)
from nightshift.pipelines.store import Store

logger = logging.getLogger(__name__)

OUTAGE_ENV = "NIGHTSHIFT_TRACKING_OUTAGE"  # auto | stop | spool (`--tracking-outage`)
STARTED_MARKERS = ("status.json", "checkpoints/latest.json", "sweep.json")  # a run or sweep started before
ARTIFACTS_DIR = "mlflow-artifacts"
_SCHEMES = ("http://", "https://", "sqlite:///", "postgresql://", "postgresql+", "mysql://", "mysql+",
            "mssql://", "mssql+", "databricks")


def default_artifact_root(uri: str, store: Store | str | None) -> str | None:
    """Where a database-backed tracking URI keeps artifacts; None for a server (it decides)."""
    if uri.startswith(("http://", "https://", "databricks")):
        return None
    store = open_store(store)
    if uri == default_tracking_uri(store) or not uri.startswith("sqlite:///"):
        return store.uri(ARTIFACTS_DIR)
    return posixpath.join(os.path.dirname(uri[len("sqlite:///"):]) or ".", ARTIFACTS_DIR)


def check_tracking_uri(uri: str) -> str:
    """A one-line error for URIs MLflow 3 cannot track into (plain folders, file://, typos)."""
    if uri.startswith(_SCHEMES):
        if uri.startswith("sqlite:///"):
            os.makedirs(os.path.dirname(os.path.abspath(uri[len("sqlite:///"):])), exist_ok=True)
        return uri
    raise UserError(f"tracking URI {uri!r} is not supported; use sqlite:///path/to/mlflow.db (local), "
                    "http(s)://host:port (an `mlflow server`), or a postgresql:// / mysql:// database")


def outage_policy(store: Store, prefix: str | None, requested: str | None = None) -> Literal["error", "spool"]:
    """What a tracker does when MLflow is unreachable at start: the documented policy.

    `requested` (else `$NIGHTSHIFT_TRACKING_OUTAGE`, set by `--tracking-outage`):
    "stop" (or "error"), "spool", or "auto" (the default). Auto spools for a run
    that was started before: its folder holds a status, a checkpoint pointer or
    a sweep record (a `--resume`, a sweep rerun, a Ray restart, a Modal retry),
    because killing hours of training over a tracking restart loses more than it
    saves; a brand-new run stops with a one-line error, so a typo in the URI is
    seen at once. Spooled records are replayed exactly once when the server is
    back (in this process, or by the next start of the same run).
    """
    value = (requested or os.environ.get(OUTAGE_ENV) or "auto").strip().lower()
    if value in ("stop", "error"):
        return "error"
    if value == "spool":
        return "spool"
    if value != "auto":
        raise UserError(f"tracking outage policy {value!r}: accepted auto, stop, spool "
                        f"(--tracking-outage or ${OUTAGE_ENV})")
    if prefix and any(store.exists(prefix, *marker.split("/")) for marker in STARTED_MARKERS):
        return "spool"
    return "error"


def build_tracker(uri: str | None, store: Store | str | None, rank: int, *,
                  run_prefix: str | Sequence[str] | None = None, enabled: bool = True,
                  on_unreachable: Literal["auto", "error", "spool"] = "auto", naming: RunNaming | None = None,
                  **mlflow_options: Any) -> Tracker:
    """The tracker for one process of a run.

    uri: MLflow tracking URI; None means $MLFLOW_TRACKING_URI, else the embedded sqlite DB of a
        local store (`uri.resolve_tracking_uri`); "none" (or "off") turns MLflow off, like `enabled=False`.
    store: the artifact store (URL or `Store`); spool and JSONL history live in it.
    rank: only rank 0 tracks the run; every other rank gets a `NodeMetricsTracker` (it logs its
        node's system metrics into rank 0's run when it is the first rank of its node: `nodes`),
        or a `NoopTracker` where MLflow is off.
    run_prefix: the run's folder in the store (`runs/<dataset>/<model>/<run>`); when
        given, a JSONL history goes to `<run_prefix>/tracking/` and the outage spool to
        `<run_prefix>/tracking-spool/` (else `tracking-spool/<run key>` in the store).
    enabled: False keeps only the JSONL history (`--no-mlflow`).
    on_unreachable: "error" stops at start with a one-line `UserError` when the server
        is down; "spool" trains on and sends everything when it returns; "auto"
        follows `outage_policy` (spool for a run started before, else error).
    naming: the launcher's `--experiment` / `--run-name` / `--tag` (`tracking.naming`); without an
        experiment, `$MLFLOW_EXPERIMENT_NAME` of this process, else the caller's default.
    mlflow_options: passed to `MlflowTracker` (flush/retry intervals, `config_artifact`, ...).
    """
    store = open_store(store)
    uri = resolve_tracking_uri(uri, store)
    if is_disabled(uri):
        enabled, uri = False, None
    if rank != 0:
        if not enabled or uri is None:
            return NoopTracker()
        return NodeMetricsTracker(check_tracking_uri(uri),
                                  system_metrics_s=mlflow_options.get("system_metrics_s", 10.0))
    prefix = posixpath.join(*run_prefix) if isinstance(run_prefix, (list, tuple)) else run_prefix
    trackers: list[Tracker] = []
    if enabled:
        if uri is None:
            logger.warning("store %s is not local, so there is no embedded MLflow DB; pass --tracking-uri "
                           "to track in MLflow (the JSONL history in the store is still written)", store.url)
        else:
            from nightshift.orchestrator.tracking.mlflow_tracker import MlflowTracker  # the only mlflow import

            local = default_tracking_uri(store)
            if on_unreachable == "auto":
                on_unreachable = outage_policy(store, prefix)
            trackers.append(MlflowTracker(
                check_tracking_uri(uri), spool_store=store,
                spool_prefix=f"{prefix}/tracking-spool" if prefix else None,
                artifact_root=default_artifact_root(uri, store), on_unreachable=on_unreachable,
                fallback_hint=local, **mlflow_options))
    if prefix:
        trackers.append(JsonlTracker(store, f"{prefix}/tracking"))
    if not trackers:
        return NoopTracker()
    return named(trackers[0] if len(trackers) == 1 else CompositeTracker(trackers), naming)

"""Turning a stream of logged items into MLflow requests: batch limits, and "is the server there?".

Kept apart from `mlflow_tracker` (and free of mlflow imports) so the pure
logic is small and testable without a server.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

MAX_METRICS, MAX_PARAMS_OR_TAGS, MAX_ENTITIES = 1000, 100, 1000  # mlflow log_batch limits


def probe(uri: str, timeout_s: float = 3.0) -> str | None:
    """None when the tracking backend answers, else why not. Non-HTTP URIs (sqlite) always answer here."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            return None
    except urllib.error.HTTPError as exc:
        return None if exc.code < 500 else f"HTTP {exc.code}"
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "unreachable"
        reason = getattr(exc, "reason", exc)
        return f"{type(exc).__name__}: {reason}"


def _split(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """One logged item -> chunks that each fit a log_batch call."""
    metrics, params, tags = batch.get("metrics", []), list(batch.get("params", {}).items()), \
        list(batch.get("tags", {}).items())
    chunks = [{"kind": "batch", "metrics": metrics[i:i + MAX_METRICS]} for i in range(0, len(metrics), MAX_METRICS)]
    chunks += [{"kind": "batch", "params": dict(params[i:i + MAX_PARAMS_OR_TAGS])}
               for i in range(0, len(params), MAX_PARAMS_OR_TAGS)]
    chunks += [{"kind": "batch", "tags": dict(tags[i:i + MAX_PARAMS_OR_TAGS])}
               for i in range(0, len(tags), MAX_PARAMS_OR_TAGS)]
    return chunks


def _fits(unit: dict[str, Any], chunk: dict[str, Any]) -> bool:
    m = len(unit["metrics"]) + len(chunk.get("metrics", []))
    p = len(unit["params"]) + len(chunk.get("params", {}))
    t = len(unit["tags"]) + len(chunk.get("tags", {}))
    return m <= MAX_METRICS and p <= MAX_PARAMS_OR_TAGS and t <= MAX_PARAMS_OR_TAGS and m + p + t <= MAX_ENTITIES


def coalesce(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge consecutive metric/tag/param items into as few log_batch units as the limits allow, in order."""
    units: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for item in items:
        if item["kind"] != "batch":
            units.append(item)
            current = None
            continue
        for chunk in _split(item):
            if current is None or not _fits(current, chunk):
                current = {"kind": "batch", "metrics": [], "params": {}, "tags": {}}
                units.append(current)
            current["metrics"].extend(chunk.get("metrics", []))
            current["params"].update(chunk.get("params", {}))
            current["tags"].update(chunk.get("tags", {}))
    return units

"""Read tracked runs back as plain dicts and lists (for sweep reports, `nightshift report`, tests).

Callers get JSON-ready data and never touch MLflow entities; the client
itself comes from `mlflow_tracker.open_client`, so mlflow stays imported in
one module only (and only when these helpers are used).
"""

from __future__ import annotations

from typing import Any

from nightshift.orchestrator.tracking.base import PARENT_RUN_TAG, RUN_KEY_TAG

_PAGE = 1000


def _client(uri: str) -> Any:
    from nightshift.orchestrator.tracking.mlflow_tracker import open_client

    return open_client(uri)


def run_dict(run: Any) -> dict[str, Any]:
    """An MLflow run as {run_id, run_name, status, times, tags, params, metrics (latest), parent, key}."""
    info, data = run.info, run.data
    return {
        "run_id": info.run_id,
        "run_name": info.run_name,
        "experiment_id": info.experiment_id,
        "status": info.status,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "artifact_uri": info.artifact_uri,
        "run_key": data.tags.get(RUN_KEY_TAG),
        "parent_run_id": data.tags.get(PARENT_RUN_TAG),
        "tags": dict(data.tags),
        "params": dict(data.params),
        "metrics": dict(data.metrics),
    }


def _search(uri: str, experiment_ids: list[str], filter_string: str) -> list[dict[str, Any]]:
    client, out, token = _client(uri), [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string, max_results=_PAGE,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        out.extend(run_dict(r) for r in page)
        token = page.token
        if not token:
            return out


def experiment_names(uri: str) -> list[str]:
    return sorted(e.name for e in _client(uri).search_experiments())


def runs_of_experiment(uri: str, name: str, filter_string: str = "") -> list[dict[str, Any]]:
    """All active runs of experiment `name` (oldest first); [] when the experiment does not exist."""
    experiment = _client(uri).get_experiment_by_name(name)
    if experiment is None:
        return []
    return _search(uri, [experiment.experiment_id], filter_string)


def find_run(uri: str, experiment: str, run_key: str) -> dict[str, Any] | None:
    """The run tracked for `run_key` (one per dataset, model and seed), or None."""
    runs = runs_of_experiment(uri, experiment, f"tags.`{RUN_KEY_TAG}` = '{run_key}'")
    return runs[0] if runs else None


def get_run(uri: str, run_id: str) -> dict[str, Any]:
    return run_dict(_client(uri).get_run(run_id))


def child_runs(uri: str, parent_run_id: str) -> list[dict[str, Any]]:
    """The nested runs of a sweep's parent run."""
    parent = _client(uri).get_run(parent_run_id)
    return _search(uri, [parent.info.experiment_id], f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'")


def metric_history(uri: str, run_id: str, key: str) -> list[dict[str, float]]:
    """[{step, value, timestamp}] of one metric of one run, by step."""
    points = _client(uri).get_metric_history(run_id, key)
    return sorted(({"step": m.step, "value": m.value, "timestamp": m.timestamp} for m in points),
                  key=lambda p: (p["step"], p["timestamp"]))


def metric_histories(uri: str, run_id: str, keys: list[str] | None = None) -> dict[str, list[dict[str, float]]]:
    """Histories of several metrics (default: every metric the run has)."""
    keys = keys if keys is not None else sorted(_client(uri).get_run(run_id).data.metrics)
    return {key: metric_history(uri, run_id, key) for key in keys}


def list_artifacts(uri: str, run_id: str, path: str | None = None) -> list[str]:
    """Artifact file paths of a run (recursively), relative to its artifact root."""
    client, out, stack = _client(uri), [], [path]
    while stack:
        for entry in client.list_artifacts(run_id, stack.pop()):
            (stack if entry.is_dir else out).append(entry.path)
    return sorted(out)

"""What a run adds to MLflow beyond params and metrics: dataset inputs, its logged model, system metrics,
and a registry entry for that model.

Helpers of `MlflowTracker` (its sender thread calls `send_inputs` and
`send_model`, so they are batched and spooled like everything else) and of
`nightshift train --register` (`register_run_model`). Idempotent where a
replay or a re-run can repeat them: MLflow deduplicates dataset inputs, and a
run that already has a READY logged model of the same name keeps it.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from mlflow.entities import Dataset, DatasetInput, InputTag, LoggedModelOutput, LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from nightshift.orchestrator.errors import UserError

logger = logging.getLogger(__name__)

CONTEXT_TAG = "mlflow.data.context"  # what the UI's Dataset column shows beside the name
MODEL_TYPE = "nightshift"
REGISTRATION_TAG = "nightshift.registration"  # one token per `register_run_model` call: what to undo
# Registered model names MLflow accepts everywhere (file paths, URIs, the UI): no slashes, quotes or colons.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,199}$")


def send_inputs(client: MlflowClient, run_id: str, datasets: Sequence[Mapping[str, Any]]) -> None:
    inputs = [DatasetInput(Dataset(name=d["name"], digest=d["digest"], source_type=d["source_type"],
                                   source=d["source"], schema=d.get("schema"), profile=d.get("profile")),
                           tags=[InputTag(CONTEXT_TAG, d["context"])] if d.get("context") else [])
              for d in datasets]
    if inputs:
        client.log_inputs(run_id, datasets=inputs)


def find_logged_model(client: MlflowClient, run_id: str, name: str = "model") -> Any | None:
    """The READY logged model `name` of a run (what `runs:/<run_id>/<name>` resolves to), or None."""
    experiment_id = client.get_run(run_id).info.experiment_id
    token = None
    while True:
        page = client.search_logged_models([experiment_id], filter_string=f"name = '{name}'", page_token=token)
        for model in page:
            if model.source_run_id == run_id and model.status == LoggedModelStatus.READY:
                return model
        token = page.token
        if not token:
            return None


def send_model(client: MlflowClient, run_id: str, local_dir: str, *, name: str = "model", step: int = 0,
               params: Mapping[str, str] | None = None) -> str:
    """Log a saved MLflow model folder as run `run_id`'s logged model `name`; returns its model id.

    What `mlflow.pyfunc.log_model` does, for a given run and client instead of
    the process-global active run: a LoggedModel (PENDING), the run's output
    link (the UI's Models column), the files, then READY. A failure marks the
    model FAILED, so `runs:/<run>/<name>` never resolves to half a model.
    `params` (family, flavor, dataset, step, val bpb) show on the model's page;
    metrics are not copied onto it, which would add a second point at this
    step to the run's own metric histories.
    """
    if (existing := find_logged_model(client, run_id, name)) is not None:
        logger.info("run %s already has logged model %s (%s); keeping it", run_id, name, existing.model_id)
        return existing.model_id
    experiment_id = client.get_run(run_id).info.experiment_id
    model = client.create_logged_model(experiment_id, name=name, source_run_id=run_id, model_type=MODEL_TYPE,
                                       params={k: str(v) for k, v in (params or {}).items()})
    try:
        meta = Model.load(os.path.join(local_dir, "MLmodel"))
        meta.run_id, meta.model_id, meta.artifact_path = run_id, model.model_id, model.artifact_location
        meta.model_uuid = model.model_id
        meta.save(os.path.join(local_dir, "MLmodel"))
        client.log_model_artifacts(model.model_id, local_dir)
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=step)])
        client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    except BaseException:
        try:
            client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        except Exception:
            logger.debug("could not mark logged model %s FAILED", model.model_id, exc_info=True)
        raise
    return model.model_id


def find_tracked_run_id(client: MlflowClient, run_key: str) -> str | None:
    """The MLflow run id tracking nightshift run `run_key` (in whichever experiment), or None."""
    from mlflow.entities import ViewType

    from nightshift.orchestrator.tracking.base import RUN_KEY_TAG

    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    found = client.search_runs(ids, filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'",
                               run_view_type=ViewType.ACTIVE_ONLY, max_results=1) if ids else []
    return found[0].info.run_id if found else None


def register_tracked_run(uri: str, run_key: str, name: str) -> dict[str, str]:
    """`nightshift train --register NAME`: register the logged model of the run tracked for `run_key`."""
    client = MlflowClient(tracking_uri=uri)
    run_id = find_tracked_run_id(client, run_key)
    if run_id is None:
        raise UserError(f"run {run_key} is not tracked in MLflow at {uri}; nothing registered")
    return register_run_model(client, run_id, name)


def check_model_name(name: str) -> str:
    """A one-line error for a registered model name nightshift will not create."""
    if not isinstance(name, str) or not MODEL_NAME.match(name) or name != name.strip():
        raise UserError(f"--register {name!r}: a registered model name is 1-200 letters, digits, spaces, '.', "
                        "'_' or '-', starting with a letter or digit")
    return name


def register_run_model(client: MlflowClient, run_id: str, name: str, model_name: str = "model") -> dict[str, str]:
    """Register run `run_id`'s logged model as a new version of `name`; {name, version, model_id, source}.

    All or nothing. Every version this call asks for carries a one-time token
    (`nightshift.registration`), so when anything fails after the server made
    a version (its own bookkeeping, a retried request that made two, a
    version that is not READY) the versions carrying the token are deleted,
    and a registered model this call created goes with them.
    """
    check_model_name(name)
    model = find_logged_model(client, run_id, model_name)
    if model is None:
        raise UserError(f"MLflow run {run_id} has no logged model {model_name!r} to register (was the run "
                        "tracked while the server was down? its spool is sent when the run starts again)")
    created = False
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(name, tags={"nightshift": "true"})
        created = True
    source = f"models:/{model.model_id}"
    token = uuid.uuid4().hex
    try:
        version = client.create_model_version(name, source, run_id=run_id, model_id=model.model_id,
                                              tags={REGISTRATION_TAG: token}, await_creation_for=60)
        if version.status != "READY":
            raise UserError(f"model version {name} v{version.version} is {version.status}, not READY")
    except BaseException:
        undo_registration(client, name, token, delete_model=created)
        raise
    return {"name": name, "version": str(version.version), "model_id": model.model_id, "source": source,
            "uri": f"models:/{name}/{version.version}"}


def undo_registration(client: MlflowClient, name: str, token: str, *, delete_model: bool) -> None:
    """Remove what a failed registration made: its registered model if it created it, else its versions."""
    try:
        if delete_model:
            client.delete_registered_model(name)
            return
        for version in client.search_model_versions(f"name = '{name}'"):
            if version.tags.get(REGISTRATION_TAG) == token:
                client.delete_model_version(name, version.version)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            _cleanup_failed(name, token, exc)
    except Exception as exc:  # noqa: BLE001 - e.g. the server went away: say what may be left
        _cleanup_failed(name, token, exc)


def _cleanup_failed(name: str, token: str, exc: BaseException) -> None:
    logger.error("registering %r failed and so did removing what it made (%s: %s); delete the versions of %r "
                 "tagged %s=%s by hand", name, type(exc).__name__, exc, name, REGISTRATION_TAG, token)


class SystemMetrics:
    """MLflow's system-metrics monitor (CPU, memory, disk, network; GPUs through nvidia-ml-py) for one run.

    Its thread logs straight to the server every `sampling_interval_s`
    (`MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL` overrides) and stops by itself
    if the server goes away. `stop()` logs one last sample, so even a run
    shorter than the interval has its figures. `node_id` names the machine
    in a run on several (`system/<node_id>/...`; `tracking.nodes`).
    """

    def __init__(self, uri: str, run_id: str, *, sampling_interval_s: float = 10.0, node_id: str | None = None) -> None:
        self._monitor: Any = None
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            self._monitor = SystemMetricsMonitor(run_id, sampling_interval=sampling_interval_s,
                                                 resume_logging=True, node_id=node_id, tracking_uri=uri)
            self._monitor.start()
        except Exception as exc:  # noqa: BLE001 - e.g. psutil missing: training goes on without them
            logger.warning("system metrics are off (%s: %s); pip install psutil nvidia-ml-py",
                           type(exc).__name__, exc)
            self._monitor = None

    def stop(self, *, last_sample: bool = True) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is None:
            return
        try:
            monitor.finish()
            if not last_sample:
                return
            monitor.collect_metrics()
            monitor.publish_metrics(monitor.aggregate_metrics())
            monitor.mlflow_logger.flush()
        except Exception as exc:  # noqa: BLE001
            logger.info("last system metrics sample not logged: %s", exc)

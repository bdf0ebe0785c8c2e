"""`Tracker` on MLflow: batched in a background thread, spooled durably while the server is away.

The only module that imports mlflow (with its helpers in `mlflow_outputs`:
dataset inputs, the logged model, system metrics). The trainer's calls only enqueue (cheap,
never raise); a sender thread wakes every `flush_interval_s` (or on
`flush()`), coalesces what accumulated into `MlflowClient.log_batch` calls
within MLflow's batch limits, and sends them. If the server does not answer,
the batch goes to a `Spool` (numbered JSON files in the store) and so does
everything after it, in order; the thread probes `<uri>/health` every
`retry_interval_s` and, when the server is back, replays the spool in order
before anything new. A later `start()` with the same run key replays what a
previous process left behind. Replay is idempotent: metric points at or below
the step the server already holds for their key are skipped.

MLflow's own HTTP retries (`MLFLOW_HTTP_REQUEST_MAX_RETRIES`, about 4 minutes
by default) still apply to a request that is in flight when the server dies;
the health probe keeps every later request from waiting on them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.tags import (
    user as _user,  # the launcher's user where it handed one ($NIGHTSHIFT_USER)
)
from nightshift.orchestrator.tracking.base import (
    PARENT_RUN_TAG,
    RUN_KEY_TAG,
    RunStatus,
    StepFilter,
    Tracker,
    check_status,
    event_records,
)
from nightshift.orchestrator.tracking.batching import coalesce, probe
from nightshift.orchestrator.tracking.mlflow_outputs import SystemMetrics, send_inputs, send_model
from nightshift.orchestrator.tracking.redact_files import redacted_artifact
from nightshift.orchestrator.tracking.sanitize import (
    metric_values,
    redact_text,
    sanitize_params,
    sanitize_structure,
    sanitize_tags,
)
from nightshift.orchestrator.tracking.spool import Spool, default_spool_prefix
from nightshift.pipelines.ids import slugify
from nightshift.pipelines.store import Store

logger = logging.getLogger(__name__)

# Errors where the server answered "no" (replaying would fail forever), not "not now".
_REJECTIONS = frozenset({"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "INVALID_STATE",
                         "BAD_REQUEST", "RESOURCE_ALREADY_EXISTS", "INVALID_REQUEST"})


def open_client(uri: str) -> MlflowClient:
    """An MLflow client for `uri` (the read helpers in `query` use this, keeping mlflow imports here)."""
    return MlflowClient(tracking_uri=uri)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _is_rejection(exc: BaseException) -> bool:
    return isinstance(exc, MlflowException) and exc.error_code in _REJECTIONS


class MlflowTracker(Tracker):
    """One MLflow run per run key; see the module docstring for delivery and outage behaviour."""

    def __init__(self, uri: str, *, spool_store: Store, spool_prefix: str | None = None,
                 artifact_root: str | None = None, on_unreachable: Literal["error", "spool"] = "error",
                 fallback_hint: str | None = None, flush_interval_s: float = 1.0,
                 retry_interval_s: float = 5.0, probe_timeout_s: float = 3.0,
                 flush_timeout_s: float = 600.0, system_metrics_s: float | None = 10.0,
                 config_artifact: str | None = None) -> None:
        if on_unreachable not in ("error", "spool"):
            raise ValueError(f"on_unreachable={on_unreachable!r}: expected 'error' or 'spool'")
        self.uri = uri
        self._client = open_client(uri)
        self._spool_store, self._spool_prefix = spool_store, spool_prefix
        self._artifact_root = artifact_root
        self._on_unreachable, self._fallback_hint = on_unreachable, fallback_hint
        self._interval, self._retry_interval = flush_interval_s, retry_interval_s
        self._probe_timeout, self._flush_timeout = probe_timeout_s, flush_timeout_s
        self._spool: Spool | None = None
        self._meta: dict[str, Any] = {}
        self._run_id = ""
        self._steps = StepFilter()  # caller side: drop re-logged steps before they are queued
        self._acked = StepFilter()  # sender side: the last step per key the server is known to hold
        self._cond = threading.Condition()
        self._queue: list[dict[str, Any]] = []
        self._held: list[dict[str, Any]] = []  # units neither sent nor spooled yet (store hiccup)
        self._enqueued = self._handled = 0
        self._flush_requested = self._stopping = self._finished = False
        self._online = False
        self._verified = False  # run id confirmed by the server in this process (not just read from the spool)
        self._last_probe = 0.0
        self._warned: set[str] = set()
        self._thread: threading.Thread | None = None
        self._session = uuid.uuid4().hex  # marks this process's terminate record apart from older ones
        self._system_interval = system_metrics_s  # None: no system metrics
        self._system: SystemMetrics | None = None
        self._node_id: str | None = None  # system metrics under system/<node>/ (runs on several nodes)
        # Where start() logs the nested params as JSON (a run: "config.json", what `--config FILE` reads back)
        self._config_artifact = config_artifact

    # ----------------------------------------------------------------- public API

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def spool(self) -> Spool | None:
        return self._spool

    @property
    def online(self) -> bool:
        return self._online

    @property
    def wants_models(self) -> bool:
        return True

    def start(self, run_key: str, run_name: str, experiment: str, tags: Mapping[str, str],
              params: Mapping[str, Any], parent_run_id: str | None = None) -> str:
        if self._thread is not None:
            raise RuntimeError("MlflowTracker.start() called twice; use one tracker per run")
        if not run_key or any(c in run_key for c in "'\"\\`") or len(run_key) > 250:
            raise UserError(f"run key {run_key!r} is not usable: 1-250 characters without quotes or backslashes")
        base_tags = {**tags, RUN_KEY_TAG: run_key, "mlflow.runName": run_name}
        if parent_run_id:
            base_tags[PARENT_RUN_TAG] = parent_run_id
        with_user = {"mlflow.user": _user(), **base_tags}
        self._meta = {"run_key": run_key, "run_name": run_name, "experiment": experiment,
                      "parent_run_id": parent_run_id, "tags": sanitize_tags(with_user), "run_id": ""}
        clean_params = sanitize_params(params)
        self._spool = Spool(self._spool_store, self._spool_prefix or default_spool_prefix(experiment, run_key))
        reason = probe(self.uri, self._probe_timeout)
        if reason is None:
            try:
                self._open_online(clean_params)
            except MlflowException as exc:
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                if _is_rejection(exc):
                    raise UserError(f"MLflow at {redact_text(self.uri)} refused to open the run ({reason})") from None
                if not self.uri.startswith(("http://", "https://")):
                    raise UserError(f"tracking store {redact_text(self.uri)} is not usable ({reason})") from None
        if reason is not None:
            self._open_offline(clean_params, reason)
        self._thread = threading.Thread(target=self._loop, name="nightshift-mlflow", daemon=True)
        self._thread.start()
        if self._config_artifact:  # the whole config in one file: download it, rerun with `--config`
            self.log_text(json.dumps(sanitize_structure(dict(params)), indent=2, sort_keys=True) + "\n",
                          self._config_artifact)
        return self._run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        try:
            fresh = self._steps.admit(metric_values(metrics), int(step))
            if fresh:
                ts = _now_ms()
                self._put({"kind": "batch", "metrics": [[k, v, ts, int(step)] for k, v in fresh.items()]})
        except Exception as exc:  # noqa: BLE001 - never raise into the trainer
            self._warn_once("log_metrics", exc)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        try:
            self._put({"kind": "batch", "tags": sanitize_tags(tags)})
        except Exception as exc:  # noqa: BLE001
            self._warn_once("set_tags", exc)

    def log_event(self, name: str, step: int, detail: Mapping[str, Any]) -> None:
        try:
            metrics, tags = event_records(name, step, sanitize_structure(dict(detail)))
            fresh = self._steps.admit(metric_values(metrics), int(step))
            ts = _now_ms()
            self._put({"kind": "batch", "metrics": [[k, v, ts, int(step)] for k, v in fresh.items()],
                       "tags": sanitize_tags(tags)})
        except Exception as exc:  # noqa: BLE001
            self._warn_once("log_event", exc)

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        try:
            self._put({"kind": "artifact", "local_path": os.path.abspath(local_path), "artifact_path": artifact_path})
        except Exception as exc:  # noqa: BLE001
            self._warn_once("log_artifact", exc)

    def log_text(self, text: str, artifact_file: str) -> None:
        try:
            self._put({"kind": "text", "text": redact_text(text), "artifact_file": artifact_file})
        except Exception as exc:  # noqa: BLE001
            self._warn_once("log_text", exc)

    def log_inputs(self, datasets: Any) -> None:
        try:
            self._put({"kind": "inputs", "datasets": [dict(d) for d in datasets]})
        except Exception as exc:  # noqa: BLE001
            self._warn_once("log_inputs", exc)

    def log_model(self, local_dir: str, name: str = "model", step: int = 0,
                  params: Mapping[str, Any] | None = None) -> None:
        try:
            self._put({"kind": "model", "local_path": os.path.abspath(local_dir), "name": name, "step": int(step),
                       "params": {str(k): str(v) for k, v in (params or {}).items()}})
        except Exception as exc:  # noqa: BLE001
            self._warn_once("log_model", exc)

    def flush(self) -> None:
        if self._thread is None:
            return
        with self._cond:
            target = self._enqueued
            self._flush_requested = True
            self._cond.notify_all()
            done = self._cond.wait_for(lambda: self._handled >= target, timeout=self._flush_timeout)
        if not done:
            logger.warning("tracking: %d records still in flight to %s after %.0fs",
                           target - self._handled, redact_text(self.uri), self._flush_timeout)

    def finish(self, status: RunStatus = "FINISHED") -> None:
        check_status(status)
        if self._thread is None or self._finished:
            return
        self._finished = True
        self._stop_system_metrics()
        self._put({"kind": "terminate", "status": status, "end_time": _now_ms(), "session": self._session})
        self.flush()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=self._flush_timeout)
        left = len(self._spool) if self._spool is not None else 0
        if left:
            logger.warning("tracking server %s unreachable: %d records kept in %s; they are sent when this "
                           "run starts again (or by replay_spool)", redact_text(self.uri), left, self._spool.uri)

    # ----------------------------------------------------------------- opening the run

    def _open_online(self, params: dict[str, str]) -> None:
        self._run_id = self._resolve_run()
        self._replay()  # what an earlier process left, before anything new
        run = self._client.get_run(self._run_id)
        for metric in run.data.to_proto().metrics:
            self._steps.seen(metric.key, metric.step)
            self._acked.seen(metric.key, metric.step)
        existing = run.data.params
        changed = sorted(k for k, v in params.items() if k in existing and existing[k] != v)
        if changed:
            logger.warning("run %s already has other values for params %s; MLflow params are immutable, "
                           "keeping the old ones", self._run_id, ", ".join(changed[:10]))
        fresh = {k: v for k, v in params.items() if k not in existing}
        for unit in coalesce([{"kind": "batch", "params": fresh, "tags": self._meta["tags"]}]):
            self._send(unit)
        self._online = True
        self._start_system_metrics()

    def monitor_node(self, node_id: str | None, run_id: str = "") -> None:
        """Name the node this process monitors (its own run's, whatever `run_id` says); before `start`
        ideally, else its monitor restarts under the new name."""
        if node_id == self._node_id:
            return
        self._node_id = node_id
        if self._system is not None:
            system, self._system = self._system, None
            system.stop(last_sample=False)
            self._start_system_metrics()

    def _start_system_metrics(self) -> None:
        if self._system is None and self._system_interval and self._run_id and not self._finished:
            self._system = SystemMetrics(self.uri, self._run_id, sampling_interval_s=self._system_interval,
                                         node_id=self._node_id)

    def _stop_system_metrics(self) -> None:
        system, self._system = self._system, None
        if system is not None:
            system.stop()

    def _open_offline(self, params: dict[str, str], reason: str) -> None:
        shown = redact_text(self.uri)
        if self._on_unreachable == "error":
            hint = f"track locally with --tracking-uri {self._fallback_hint}" if self._fallback_hint \
                else "track locally with --tracking-uri sqlite:///<store>/mlflow.db"
            raise UserError(f"MLflow tracking server {shown} is unreachable ({reason}); start it, or {hint}")
        logger.warning("MLflow tracking server %s is unreachable (%s); spooling to %s and training on",
                       shown, reason, self._spool.uri)
        old = self._spool.read_meta() or {}
        if not self._run_id and old.get("run_key") == self._meta["run_key"]:
            self._run_id = old.get("run_id", "")
        self._meta["run_id"] = self._run_id
        self._spool.write_meta(self._meta)
        self._spool.append({"kind": "batch", "metrics": [], "params": params, "tags": self._meta["tags"]})
        self._online = False
        self._last_probe = time.monotonic()

    def _experiment_id(self, name: str) -> str:
        experiment = self._client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                logger.warning("experiment %r was deleted; restoring it", name)
                self._client.restore_experiment(experiment.experiment_id)
            return experiment.experiment_id
        location = None
        if self._artifact_root:
            root = self._artifact_root.rstrip("/")
            location = f"{root}/{slugify(name)}"
            if "://" not in location:
                location = Path(location).resolve().as_uri()
        try:
            return self._client.create_experiment(name, artifact_location=location)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self._client.get_experiment_by_name(name).experiment_id  # created by a sibling run

    def _resolve_run(self) -> str:
        """The run carrying this run key in the experiment (reopened), or a new one."""
        meta = self._meta
        experiment_id = self._experiment_id(meta["experiment"])
        found = self._client.search_runs(
            [experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{meta['run_key']}'",
            run_view_type=ViewType.ACTIVE_ONLY, max_results=1, order_by=["attributes.start_time ASC"])
        if found:
            run_id = found[0].info.run_id
            self._client.update_run(run_id, status="RUNNING")
            starts = int(found[0].data.tags.get("nightshift.starts", "1") or 1) + 1
            self._client.set_tag(run_id, "nightshift.starts", str(starts))
            logger.info("resuming tracked run %s for %s", run_id, meta["run_key"])
        else:
            run_id = self._client.create_run(experiment_id, start_time=_now_ms(), tags=meta["tags"],
                                             run_name=meta["run_name"]).info.run_id
        self._meta["run_id"] = run_id
        self._verified = True
        if self._spool is not None:
            self._spool.write_meta(self._meta)  # lets a later offline start name the run it will replay into
        return run_id

    # ----------------------------------------------------------------- the sender thread

    def _put(self, item: dict[str, Any]) -> None:
        if self._thread is None or self._stopping:
            return
        with self._cond:
            self._queue.append(item)
            self._enqueued += 1

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._flush_requested or self._stopping, timeout=self._interval)
                items, self._queue = self._queue, []
                self._flush_requested = False
                stopping = self._stopping
            try:
                self._deliver(items, final=stopping)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any single failure
                self._warn_once("deliver", exc)
            with self._cond:
                self._handled += len(items)
                self._cond.notify_all()
                if stopping and not self._queue:
                    return

    def _deliver(self, items: list[dict[str, Any]], final: bool = False) -> None:
        if not self._online and (final or time.monotonic() - self._last_probe >= self._retry_interval):
            self._recover()
        units, self._held = self._held + coalesce(items), []
        if units and self._online and (reason := probe(self.uri, self._probe_timeout)) is not None:
            # A dead server would hold the request in MLflow's own retries for minutes; the probe answers at once.
            self._go_offline(reason)
        for index, unit in enumerate(units):
            if self._online:
                unit = self._unacked(unit)
                try:
                    self._send(unit)
                    continue
                except Exception as exc:  # noqa: BLE001
                    if _is_rejection(exc):
                        logger.warning("MLflow rejected a %s record, dropping it: %s", unit["kind"], exc)
                        continue
                    self._go_offline(exc)
            try:
                self._to_spool(unit)
            except Exception as exc:  # noqa: BLE001 - keep it in memory and try again next round
                self._warn_once("spool", exc)
                self._held = units[index:]
                return

    def _go_offline(self, exc: BaseException | str) -> None:
        self._online = False
        self._last_probe = time.monotonic()
        logger.warning("MLflow tracking server %s unreachable (%s); spooling to %s until it returns",
                       redact_text(self.uri), (str(exc).splitlines() or [""])[0][:200], self._spool.uri)

    def _unacked(self, unit: dict[str, Any]) -> dict[str, Any]:
        """Drop metric points the server already holds (exactly once per step, whatever was replayed)."""
        if unit["kind"] != "batch" or not unit.get("metrics"):
            return unit
        return {**unit, "metrics": [m for m in unit["metrics"] if self._acked.admit({m[0]: m[1]}, int(m[3]))]}

    def _recover(self) -> None:
        """Probe; when the server answers, replay the spool in order and go back online."""
        self._last_probe = time.monotonic()
        if probe(self.uri, self._probe_timeout) is not None:
            return
        try:
            if not self._verified:
                self._run_id = self._resolve_run()
            if self._replay():
                self._online = True
                self._start_system_metrics()
                logger.warning("MLflow tracking server %s is back; spool replayed", redact_text(self.uri))
        except Exception as exc:  # noqa: BLE001 - still down; try again later
            logger.info("tracking replay deferred: %s", exc)

    def _to_spool(self, unit: dict[str, Any]) -> None:
        if unit["kind"] == "model":  # a copy of the folder travels with the record
            record = {k: v for k, v in unit.items() if k != "local_path"}
            self._spool.append(record, files=unit["local_path"])
            return
        if unit["kind"] != "artifact":
            self._spool.append(unit)
            return
        if not os.path.exists(unit["local_path"]):
            logger.warning("artifact %s vanished before it could be spooled; skipping it", unit["local_path"])
            return
        with redacted_artifact(unit["local_path"]) as path:
            self._spool.append({"kind": "artifact", "artifact_path": unit["artifact_path"]}, files=path)

    # ----------------------------------------------------------------- talking to MLflow

    def _send(self, unit: dict[str, Any]) -> None:
        kind, run_id = unit["kind"], self._run_id
        if kind == "batch":
            metrics = [Metric(k, float(v), int(ts), int(step)) for k, v, ts, step in unit.get("metrics", [])]
            params = [Param(k, v) for k, v in unit.get("params", {}).items()]
            tags = [RunTag(k, v) for k, v in unit.get("tags", {}).items()]
            if not (metrics or params or tags):
                return
            try:
                self._client.log_batch(run_id, metrics=metrics, params=params, tags=tags, synchronous=True)
            except MlflowException as exc:
                if not (params and _is_rejection(exc)):
                    raise
                logger.warning("MLflow refused params (%s); sending the rest of the batch without them",
                               str(exc).splitlines()[0][:200])
                self._client.log_batch(run_id, metrics=metrics, tags=tags, synchronous=True)
        elif kind == "artifact":
            path = unit["local_path"]
            if not os.path.exists(path):
                logger.warning("artifact %s vanished before upload; skipping it", path)
                return
            with redacted_artifact(path) as clean:
                self._upload(clean, unit["artifact_path"])
        elif kind == "text":
            self._client.log_text(run_id, unit["text"], unit["artifact_file"])
        elif kind == "inputs":
            send_inputs(self._client, run_id, unit["datasets"])
        elif kind == "model":
            send_model(self._client, run_id, unit["local_path"], name=unit["name"], step=unit["step"],
                       params=unit.get("params"))
        elif kind == "terminate":
            self._client.set_terminated(run_id, status=unit["status"], end_time=unit["end_time"])
        else:
            raise ValueError(f"unknown tracking record kind {kind!r}")

    def _upload(self, path: str, artifact_path: str | None) -> None:
        if os.path.isdir(path):
            dest = "/".join(p for p in (artifact_path, os.path.basename(os.path.normpath(path))) if p)
            self._client.log_artifacts(self._run_id, path, artifact_path=dest)
        else:
            self._client.log_artifact(self._run_id, path, artifact_path=artifact_path)

    def _replay(self, apply_old_terminations: bool = False) -> bool:
        """Send spooled records in order, each at most once per metric step; True if the spool is empty.

        An earlier process's "run ended" record is skipped while this process
        keeps the run going (its own `finish` sets the final status).
        """
        names = self._spool.pending()
        if not names:
            return True
        self._acked = StepFilter()
        for metric in self._client.get_run(self._run_id).data.to_proto().metrics:
            self._acked.seen(metric.key, metric.step)  # what the server has, e.g. a batch acked but not removed
        logger.info("replaying %d spooled tracking records into run %s", len(names), self._run_id)
        for name in names:
            record = self._unacked(self._spool.read(name))
            try:
                if record["kind"] == "terminate" and record.get("session") != self._session \
                        and not apply_old_terminations:
                    pass
                elif record["kind"] == "artifact":
                    with self._spool.local_copy(record) as path:
                        self._upload(path, record.get("artifact_path"))
                elif record["kind"] == "model":
                    with self._spool.local_copy(record) as path:
                        self._send({**record, "local_path": path})
                else:
                    self._send(record)
            except Exception as exc:
                if not _is_rejection(exc):
                    raise
                logger.warning("MLflow rejected spooled record %s, dropping it: %s", name, exc)
            self._spool.remove(name)
        return True

    def _warn_once(self, what: str, exc: BaseException) -> None:
        if what not in self._warned:
            self._warned.add(what)
            logger.warning("tracking %s failed (not repeated): %s: %s", what, type(exc).__name__, exc)


def replay_spool(uri: str, spool_store: Store, prefix: str, **kwargs: Any) -> int:
    """Send what a finished (or crashed) run left in its spool; returns how many records were replayed."""
    spool = Spool(spool_store, prefix)
    meta, count = spool.read_meta(), len(spool)
    if meta is None or not count:
        return 0
    tracker = MlflowTracker(uri, spool_store=spool_store, spool_prefix=prefix, **kwargs)
    tracker._spool, tracker._meta = spool, dict(meta)
    reason = probe(uri, tracker._probe_timeout)
    if reason is not None:
        raise UserError(f"MLflow tracking server {redact_text(uri)} is unreachable ({reason}); nothing replayed")
    tracker._run_id = meta.get("run_id") or tracker._resolve_run()
    tracker._replay(apply_old_terminations=True)
    return count

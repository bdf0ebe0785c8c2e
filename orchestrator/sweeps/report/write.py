"""Write a report (report.html, report.json, PNGs) into a folder, and attach it to the sweep's MLflow run."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.sweeps.report.collect import ReportData, from_runs, from_sweep
from nightshift.orchestrator.sweeps.report.html import render
from nightshift.orchestrator.sweeps.report.plots import all_plots
from nightshift.pipelines.sizes import format_size
from nightshift.pipelines.store import Store

log = logging.getLogger(__name__)

FORMAT = "nightshift.report/1"
_MLFLOW_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True, slots=True)
class ReportFiles:
    out_dir: str
    html: str
    json: str
    plots: tuple[str, ...]
    logged_to: str | None  # the MLflow run the files were attached to, if any


def tracking_uri_for(store: Store, given: str | None, recorded: str | None = None) -> str | None:
    """--tracking-uri (or $MLFLOW_TRACKING_URI), else the one the sweep recorded (unless it held a secret),
    else the store's sqlite DB."""
    from nightshift.orchestrator.tracking import default_tracking_uri
    from nightshift.orchestrator.tracking.factory import DISABLED
    from nightshift.orchestrator.tracking.sanitize import REDACTED
    from nightshift.orchestrator.tracking.uri import explicit_tracking_uri

    given = explicit_tracking_uri(given)  # --tracking-uri > $MLFLOW_TRACKING_URI > recorded > the store's DB
    uri = given or (recorded if recorded and REDACTED not in recorded else None) or default_tracking_uri(store)
    return None if uri is None or uri.strip().lower() in DISABLED else uri


def load(store: Store, *, sweep: str | None = None, experiment: str | None = None,
         tracking_uri: str | None = None) -> ReportData:
    """`--sweep` (a sweep id, or the MLflow parent run id) or `--experiment NAME` -> ReportData."""
    from nightshift.orchestrator.sweeps.record import read_sweep, sweep_dir

    if bool(sweep) == bool(experiment):
        raise UserError("give --sweep SWEEP_ID (or its MLflow run id) or --experiment NAME")
    if experiment:
        from nightshift.orchestrator.tracking.query import runs_of_experiment

        uri = _need_uri(store, tracking_uri, f"--experiment {experiment}")
        runs = runs_of_experiment(uri, experiment)
        if not runs:
            raise UserError(f"--experiment {experiment!r}: no such experiment (or no runs) at {uri}")
        data = from_runs(store, f"Experiment {experiment}", runs)
        data.experiment, data.tracking_uri = experiment, uri
        return data
    if not _MLFLOW_RUN_ID.match(sweep):
        data = from_sweep(store, read_sweep(store, sweep))
        _attach_mlflow_ids(store, data, tracking_uri)
        return data
    from nightshift.orchestrator.sweeps.spec import SWEEP_TAG
    from nightshift.orchestrator.tracking.query import child_runs, get_run

    uri = _need_uri(store, tracking_uri, f"--sweep {sweep}")
    try:
        parent = get_run(uri, sweep)
    except Exception as exc:  # noqa: BLE001 - an unknown id is the user's to fix
        raise UserError(f"--sweep {sweep}: no MLflow run with that id at {uri} ({type(exc).__name__})") from None
    sweep_id = parent["tags"].get(SWEEP_TAG)
    if sweep_id and store.exists(*sweep_dir(sweep_id), "sweep.json"):
        data = from_sweep(store, read_sweep(store, sweep_id))
        _attach_mlflow_ids(store, data, uri)
        return data
    data = from_runs(store, f"Sweep run {sweep}", child_runs(uri, sweep))
    data.parent_run_id, data.experiment, data.sweep_id = sweep, None, sweep_id
    return data


def _need_uri(store: Store, given: str | None, what: str) -> str:
    uri = tracking_uri_for(store, given)
    if uri is None:
        raise UserError(f"{what} needs MLflow: pass --tracking-uri (the store {store.url} has no embedded DB)")
    return uri


def _attach_mlflow_ids(store: Store, data: ReportData, given: str | None) -> None:
    """The tracked run id of each cell (best effort: the report stands without MLflow)."""
    uri = tracking_uri_for(store, given, data.tracking_uri)
    if not data.parent_run_id or uri is None:
        return
    data.tracking_uri = uri
    try:
        from nightshift.orchestrator.tracking.query import child_runs

        ids = {r["tags"].get("run.id"): r["run_id"] for r in child_runs(uri, data.parent_run_id)}
    except Exception as exc:  # noqa: BLE001
        log.warning("MLflow at %s not readable (%s); the report has no MLflow run ids", uri, exc)
        return
    for cell in data.cells:
        cell["mlflow_run_id"] = ids.get(cell["run_id"])


def report_json(data: ReportData, plots: list[str]) -> dict[str, Any]:
    from nightshift.orchestrator.sweeps.report.collect import seed_summary

    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in data.finished():
        table[c["variant"]][format_size(c["size_bytes"])].append(c["val_bpb"])
    summary = {v: {s: sum(b) / len(b) for s, b in sizes.items()} for v, sizes in table.items()}
    seeds = {v: {format_size(s): row for s, row in sizes.items()} for v, sizes in seed_summary(data.cells).items()}
    refs = data.references
    return {"format": FORMAT, "title": data.title, "sweep_id": data.sweep_id, "parent_run_id": data.parent_run_id,
            "experiment": data.experiment, "source": data.source, "bound": data.bound, "spec": data.spec,
            "validation": data.validation, "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "plots": plots, "mean_val_bpb": summary, "seeds": seeds,
            "references": {format_size(s): r["bpb"] for s, r in refs.items()},
            "references_info": {format_size(s): {k: r.get(k) for k in ("train_bytes_used", "validation_bytes",
                                                                         "settings", "note", "seconds")}
                                for s, r in refs.items()},
            "cells": data.cells}


def write(data: ReportData, out_dir: str) -> ReportFiles:
    """report.html (self-contained), report.json and one PNG per figure into `out_dir` (a local folder)."""
    os.makedirs(out_dir, exist_ok=True)
    plots = all_plots(data)
    for name, png in plots.items():
        _atomic_write(os.path.join(out_dir, name), png)
    json_path, html_path = os.path.join(out_dir, "report.json"), os.path.join(out_dir, "report.html")
    _atomic_write(json_path, json.dumps(report_json(data, list(plots)), indent=2, sort_keys=True,
                                        default=str).encode("utf-8"))
    _atomic_write(html_path, render(data, plots).encode("utf-8"))
    return ReportFiles(out_dir=out_dir, html=html_path, json=json_path,
                       plots=tuple(os.path.join(out_dir, n) for n in plots), logged_to=None)


def log_to_run(uri: str, run_id: str, files: ReportFiles) -> bool:
    """Attach the report's files to an MLflow run under `report/`; False (with a warning) when that fails."""
    try:
        from nightshift.orchestrator.tracking.mlflow_tracker import open_client

        client = open_client(uri)
        for path in (files.html, files.json, *files.plots):
            client.log_artifact(run_id, path, artifact_path="report")
        return True
    except Exception as exc:  # noqa: BLE001 - the report on disk is what matters
        log.warning("could not attach the report to MLflow run %s (%s): %s", run_id, uri, exc)
        return False


def write_report(store: Store, sweep: str | None, out_dir: str, *, experiment: str | None = None,
                 tracking_uri: str | None = None, log_to_parent: bool = True) -> ReportFiles:
    """Load, write, and (for a sweep with a parent run) log the files as that run's artifacts."""
    data = load(store, sweep=sweep, experiment=experiment, tracking_uri=tracking_uri)
    files = write(data, out_dir)
    uri = tracking_uri_for(store, tracking_uri, data.tracking_uri)
    if log_to_parent and data.parent_run_id and uri is not None and log_to_run(uri, data.parent_run_id, files):
        files = ReportFiles(out_dir=files.out_dir, html=files.html, json=files.json, plots=files.plots,
                            logged_to=data.parent_run_id)
    return files


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:  # e.g. a full disk: no temporary left behind, and the error names the file
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise OSError(exc.errno, exc.strerror, path) from None

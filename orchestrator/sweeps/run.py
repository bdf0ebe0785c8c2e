"""`nightshift sweep`: every (dataset size x model variant x seed) cell, scored on the same validation bytes.

A sweep is addressed by content like everything else: `sweep_id` hashes its
spec (source, sizes, models, seeds, bound, overrides), so running the same
sweep again finds the same MLflow parent run and the same cells. Each size is
prepared once (dataset ids make a re-run a no-op; every size of one source
shares the validation split), then each cell is one ordinary training run:
a finished cell is skipped by its run id, an unfinished one resumes from its
checkpoint inside the trainer. `<store>/sweeps/<sweep_id>/sweep.json` lists the
cells and their run ids; `nightshift report` works from it.

Cells run through the backend seam (orchestrator/backends/base.py): one after
another (local), as concurrent Ray tasks (ray), or through Modal `starmap`
(modal); every backend trains a cell with `backends.body.sweep_cell`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nightshift.orchestrator.backends.base import CellOptions, get_backend
from nightshift.orchestrator.runs.folders import RunDir
from nightshift.orchestrator.runs.tags import source_tags
from nightshift.orchestrator.sweeps.record import sweep_dir, write_sweep
from nightshift.orchestrator.sweeps.spec import SWEEP_TAG, Cell, SweepConfig, SweepPlan, plan_sweep
from nightshift.orchestrator.tracking.naming import RunNaming
from nightshift.pipelines.sizes import format_size
from nightshift.pipelines.store import Store

log = logging.getLogger(__name__)

@dataclass(slots=True, kw_only=True)
class SweepOutcome:
    sweep_id: str
    parent_run_id: str | None
    cells: list[dict[str, Any]]  # sweep.json's cells (with state, and the result fields when finished)
    skipped: int  # finished before this call
    trained: int  # finished by this call
    failed: int
    interrupted: bool
    report_dir: str | None = None
    references: dict[str, dict[str, float]] = field(default_factory=dict)  # size label -> {xz, zstd, ppmd}


def run_sweep(spec: SweepConfig, store: Store, *, backend: str = "local", tracking_uri: str | None = None,
              progress: bool = True, actors: int = 0, cpus_per_cell: float = 1.0, threads: int = 0,
              report_dir: str | None = None, naming: RunNaming | None = None,
              on_cell: Callable[[str, dict[str, Any]], None] | None = None) -> SweepOutcome:
    """Plan, open the parent run, train what is not finished, write sweep.json (and a report into report_dir).

    threads: torch threads per local cell (0: torch's default); Ray cells use `cpus_per_cell`.
    naming: `--experiment` (parent and cells), `--run-name` (the parent), `--tag` (parent and cells).
    on_cell(event, cell): "skip", "start" (local), then "finished" / "failed" / "interrupted" per cell.
    """
    from nightshift.orchestrator.training.signals import StopRequest

    runner = get_backend(backend)
    runner.check(store)  # e.g. Modal needs a store it reaches: refused before any size is prepared
    plan = plan_sweep(spec, store, actors=actors, progress=progress)
    naming = naming or RunNaming()
    plan.experiment = naming.experiment_or(plan.experiment)  # sweep.json, the parent and every cell agree
    notify = on_cell or (lambda event, info: None)
    tracker, parent = _open_parent(plan, store, tracking_uri, backend, naming)
    _references(plan, store, tracker)

    def save() -> None:
        write_sweep(store, plan.manifest(parent, tracking_uri))

    todo = []
    for cell in plan.cells:
        run = RunDir(store, cell.config)
        if run.status().get("state") == "finished" and (result := run.result()) is not None:
            plan.states[cell.run_id] = {"state": "finished", "skipped": True, **_summary(result)}
            notify("skip", {**cell.to_dict(), **plan.states[cell.run_id]})
        else:
            plan.states[cell.run_id] = {"state": "resuming" if run.status().get("step") else "pending"}
            todo.append(cell)
    save()
    trained = failed = 0
    interrupted, status = False, "FAILED"
    stop = StopRequest.install()  # between cells; inside one, the trainer's own handler checkpoints first
    try:
        options = CellOptions(tracking_uri=tracking_uri, parent_run_id=parent, progress=progress, threads=threads,
                              cpus_per_cell=cpus_per_cell, stop=stop, naming=naming.for_cells(),
                              on_start=lambda i: notify("start", {**todo[i].to_dict(), "index": i + 1,
                                                                  "total": len(todo)}))
        for index, result, error in runner.run_cells([c.config for c in todo], store, options):
            cell = todo[index]
            state = _record(plan, cell, result, error, tracker)
            trained, failed = trained + (state == "finished"), failed + (state == "failed")
            notify(state, {**cell.to_dict(), **plan.states[cell.run_id]})
            save()
            if state == "interrupted":
                interrupted = True
                break
        interrupted = interrupted or stop.requested
        if not interrupted:
            _adopt_children(tracking_uri, store, plan, parent)
            if report_dir:
                from nightshift.orchestrator.sweeps.report import write_report

                write_report(store, plan.sweep_id, report_dir, tracking_uri=tracking_uri, log_to_parent=False)
                for name in sorted(os.listdir(report_dir)):
                    tracker.log_artifact(os.path.join(report_dir, name), "report")
        status = "KILLED" if interrupted else "FINISHED"
    except KeyboardInterrupt:
        status, interrupted = "KILLED", True
        raise
    finally:
        stop.uninstall()
        save()
        tracker.set_tags({"sweep.cells": str(len(plan.cells)), "sweep.failed": str(failed)})
        tracker.log_text(_json(plan.manifest(parent, tracking_uri)), "sweep.json")
        tracker.finish(status)  # type: ignore[arg-type]
    cells = plan.manifest(parent, tracking_uri)["cells"]
    return SweepOutcome(sweep_id=plan.sweep_id, parent_run_id=parent, cells=cells,
                        skipped=sum(1 for c in cells if c.get("skipped")), trained=trained, failed=failed,
                        interrupted=interrupted, report_dir=report_dir if not interrupted else None,
                        references={format_size(s): d.get("references", {}) for s, d in plan.datasets.items()})


def _open_parent(plan: SweepPlan, store: Store, tracking_uri: str | None, backend: str,
                 naming: RunNaming) -> tuple[Any, str | None]:
    """The sweep's MLflow run (reopened when this sweep id was tracked before) and its id."""
    from nightshift.orchestrator.tracking import build_tracker
    from nightshift.orchestrator.tracking.factory import DISABLED

    spec = plan.spec
    tracker = build_tracker(tracking_uri, store, rank=0, run_prefix=sweep_dir(plan.sweep_id), naming=naming,
                            config_artifact="config.json")
    tags = {"nightshift.kind": "sweep", SWEEP_TAG: plan.sweep_id, "sweep.bound": spec.bound["text"],
            "sweep.sizes": ",".join(format_size(s) for s in spec.sizes), "sweep.models": ",".join(spec.models),
            "sweep.seeds": ",".join(map(str, spec.seeds)), "dataset.source": spec.source, "backend": backend,
            **source_tags(backend), "mlflow.source.git.commit": plan.commit}
    name = f"sweep {'+'.join(format_size(s) for s in spec.sizes)} x {len(spec.models)} variants"
    tracker.start(run_key=plan.sweep_id, run_name=name, experiment=plan.experiment, tags=tags,
                  params=spec.to_dict())
    parent = tracker.run_id or None
    if parent is None and (tracking_uri or "").strip().lower() not in DISABLED:
        log.warning("no MLflow parent run id (tracking off or server unreachable): cells are tracked un-nested")
    return tracker, parent


def _record(plan: SweepPlan, cell: Cell, result: dict[str, Any] | None, error: str | None, tracker: Any) -> str:
    """Note one cell's outcome in the plan (and its bpb on the parent run); returns its state."""
    if error is not None:
        plan.states[cell.run_id] = {"state": "failed", "error": error[:500]}
    elif result.get("stop_reason") == "interrupted":
        plan.states[cell.run_id] = {"state": "interrupted", "step": result.get("step")}
    else:
        plan.states[cell.run_id] = {"state": "finished", **_summary(result)}
        m = cell.config.model
        bpb = result["val_bpb"] if result["val_bpb"] is not None else float("nan")
        tracker.log_metrics({f"val_bpb/{m.family}.{m.flavor}/{format_size(cell.size_bytes)}/s{cell.seed}": bpb}, 0)
    done = sum(1 for st in plan.states.values() if st["state"] == "finished")
    tracker.log_metrics({"sweep/cells_finished": float(done)}, done)
    return plan.states[cell.run_id]["state"]


def _references(plan: SweepPlan, store: Store, tracker: Any) -> None:
    """xz / zstd / PPMd on each size's bytes (cached beside each dataset), noted in sweep.json and on the parent run."""
    from nightshift.orchestrator.evaluation.references import NOTE, reference_metrics, references_for

    t0 = time.perf_counter()
    for size, dataset in plan.datasets.items():
        refs = references_for(store, dataset["dataset_id"])
        dataset["references"] = refs["bpb"]
        dataset["references_train_bytes"] = refs["train_bytes_used"]
        tracker.log_metrics(reference_metrics(refs, format_size(size)), 0)
    tracker.set_tags({"reference.note": NOTE})
    plan.references_seconds = round(time.perf_counter() - t0, 3)


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("val_bpb", "tokens_per_s", "train_seconds", "tokens", "epochs", "step", "stop_reason", "parameters",
            "memory_bytes", "compute_seconds", "compute", "schedule", "ablations")
    return {k: result.get(k) for k in keys}


def _adopt_children(tracking_uri: str | None, store: Store, plan: SweepPlan, parent: str | None) -> None:
    """Nest cells trained before this sweep existed (e.g. by `nightshift train`) under its parent run.

    A run already nested under another sweep keeps its parent (MLflow has one); sweep.json still lists it.
    """
    if not parent:
        return
    from nightshift.orchestrator.tracking import PARENT_RUN_TAG
    from nightshift.orchestrator.tracking.query import find_run
    from nightshift.orchestrator.tracking.uri import is_disabled, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri, store)
    if uri is None or is_disabled(uri):
        return
    try:
        from nightshift.orchestrator.tracking.mlflow_tracker import open_client

        client = open_client(uri)
        for cell in plan.cells:
            found = find_run(uri, plan.experiment, cell.run_id)
            if found is not None and not found["parent_run_id"]:
                client.set_tag(found["run_id"], PARENT_RUN_TAG, parent)
                client.set_tag(found["run_id"], SWEEP_TAG, plan.sweep_id)
    except Exception as exc:  # noqa: BLE001 - tracking is never worth failing a finished sweep over
        log.warning("could not nest earlier runs under sweep run %s: %s", parent, exc)


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)

"""Gather what a report shows, per cell, from the store: result.json, the JSONL history, the last samples.

The store is the source of truth (it needs no server and holds every run of a
sweep, however it was tracked); MLflow is asked only which runs belong to an
experiment (`--experiment`) and for the tracked run ids it shows.
"""

from __future__ import annotations

import bisect
import logging
import posixpath
from dataclasses import dataclass, field
from typing import Any

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.sweeps.report.undertrained import undertrained
from nightshift.orchestrator.tracking.jsonl import metric_series, read_history
from nightshift.pipelines.sizes import format_size
from nightshift.pipelines.store import Store

log = logging.getLogger(__name__)

RESULT_FIELDS = ("stop_reason", "step", "samples", "tokens", "epochs", "train_seconds", "tokens_per_s", "parameters",
                 "memory_bytes", "peak_rss_mb", "sleeps", "rollbacks", "val_bpb", "val_bytes", "checkpoint",
                 "compute_seconds", "compute", "train_flops", "schedule", "ablations")


@dataclass(slots=True, kw_only=True)
class ReportData:
    title: str
    sweep_id: str | None = None
    parent_run_id: str | None = None
    experiment: str | None = None
    tracking_uri: str | None = None
    source: str | None = None
    bound: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] | None = None
    validation: dict[str, Any] = field(default_factory=dict)
    cells: list[dict[str, Any]] = field(default_factory=list)
    references: dict[int, dict[str, Any]] = field(default_factory=dict)  # size -> references.json of its dataset

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(c["variant"] for c in self.cells))

    @property
    def sizes(self) -> list[int]:
        return sorted({c["size_bytes"] for c in self.cells})

    def finished(self) -> list[dict[str, Any]]:
        return [c for c in self.cells if c.get("val_bpb") is not None]


def from_sweep(store: Store, sweep: dict[str, Any]) -> ReportData:
    """A report over the cells a sweep.json lists (in the sweep's order)."""
    spec = sweep.get("spec") or {}
    datasets = sweep.get("datasets") or []
    data = ReportData(title=f"Sweep {sweep['sweep_id']}", sweep_id=sweep["sweep_id"],
                      parent_run_id=sweep.get("parent_run_id"), experiment=sweep.get("experiment"),
                      tracking_uri=sweep.get("tracking_uri"), source=spec.get("source"),
                      bound=sweep.get("bound") or {}, spec=spec,
                      validation={"validation_id": sweep.get("validation_id"),
                                  "bytes": datasets[0]["validation_bytes"] if datasets else None,
                                  "sha256": datasets[0].get("validation_sha256") if datasets else None})
    for entry in sweep["cells"]:
        data.cells.append(cell_data(store, entry["run_path"], size_bytes=entry["size_bytes"],
                                    state=entry.get("state"), error=entry.get("error")))
    data.references = references_by_size(store, {d["size_bytes"]: d["dataset_id"] for d in datasets})
    return data


def references_by_size(store: Store, datasets: dict[int, str]) -> dict[int, dict[str, Any]]:
    """The reference compressors of each size's dataset (cached beside it; computed once when missing)."""
    from nightshift.orchestrator.evaluation.references import references_for

    out = {}
    for size, dataset_id in sorted(datasets.items()):
        try:
            out[size] = references_for(store, dataset_id)
        except Exception as exc:  # noqa: BLE001 - a report without references beats no report
            log.warning("no reference figures for %s: %s", dataset_id, exc)
    return out


def from_runs(store: Store, title: str, runs: list[dict[str, Any]]) -> ReportData:
    """A report over tracked MLflow runs (`query.run_dict`s) whose folders are in this store."""
    data = ReportData(title=title)
    seen: set[str] = set()
    for run in runs:
        tags = run["tags"]
        ids = (tags.get("dataset.id"), tags.get("model.id"), tags.get("run.id"))
        if not all(ids) or ids[2] in seen or tags.get("nightshift.kind") == "sweep":
            continue
        seen.add(ids[2])
        path = posixpath.join("runs", *ids)
        if not store.exists(path, "config.json"):
            log.warning("run %s (%s) is tracked but not in store %s; left out", ids[2], run["run_name"], store.url)
            continue
        cell = cell_data(store, path, size_bytes=int(tags.get("dataset.size_bytes") or 0))
        cell["mlflow_run_id"] = run["run_id"]
        data.cells.append(cell)
        data.source = data.source or tags.get("dataset.source")
    if not data.cells:
        raise UserError(f"{title}: no tracked run of it has its folder in store {store.url}")
    data.bound = infer_bound(data.cells)
    data.references = references_by_size(store, {c["size_bytes"]: c["dataset_id"] for c in data.cells})
    return data


def cell_data(store: Store, run_path: str, *, size_bytes: int, state: str | None = None,
              error: str | None = None) -> dict[str, Any]:
    """One cell: identity, final figures (when finished), val-bpb curve, sleep series, last samples."""
    config = store.read_json(run_path, "config.json")
    run_id = posixpath.basename(run_path)
    model, train = config["model"], config["train"]
    status = store.read_json(run_path, "status.json") if store.exists(run_path, "status.json") else {}
    result = store.read_json(run_path, "result.json") if store.exists(run_path, "result.json") else None
    cell: dict[str, Any] = {
        "run_id": run_id, "dataset_id": config["dataset_id"],
        "model_id": posixpath.basename(posixpath.dirname(run_path)),
        "family": model["family"], "flavor": model["flavor"], "variant": f"{model['family']}:{model['flavor']}",
        "seed": train["seed"], "size_bytes": size_bytes, "size": format_size(size_bytes) if size_bytes else "?",
        "state": "finished" if result is not None else (state or status.get("state", "new")),
        "steps_planned": train["steps"], "budget_minutes": train.get("budget_minutes", 0.0),
        "batch_size": train["batch_size"], "run_uri": store.uri(run_path),
        **{k: (result or {}).get(k) for k in RESULT_FIELDS},
    }
    if result is None:
        cell["step"] = status.get("step", 0)
    cell["undertrained"] = undertrained(cell)
    if error:
        cell["error"] = error
    records = read_history(store, posixpath.join(run_path, "tracking"))
    cell["wall_seconds"] = wall_seconds(records)
    cell["curve"] = bpb_curve(records, result)
    cell["sleep"] = sleep_series(records)
    cell["samples"], cell["samples_step"] = last_samples(store, run_path)
    return cell


def wall_seconds(records: list[dict[str, Any]]) -> float | None:
    """Wall-clock of the run's processes (training, evals, sleep, checkpoints), summed over its starts."""
    total, first, last = 0.0, None, None
    for record in records:
        if record.get("kind") == "start":
            if first is not None:
                total += (last - first) / 1000
            first = record["time_ms"]
        last = record["time_ms"]
    return None if first is None else total + (last - first) / 1000


def _elapsed(records: list[dict[str, Any]]) -> tuple[list[int], list[float], float]:
    """(steps, cumulative training seconds, tokens per step) rebuilt from the logged throughput windows.

    Each `perf/tokens_per_s` row covers the tokens since the previous row, so
    seconds = tokens / rate summed up: training time only, like result.json's
    train_seconds (evals, sleeps and checkpoints are not in it).
    """
    seen = {p["step"]: p["value"] for p in metric_series(records, "perf/tokens_seen")}
    rates = metric_series(records, "perf/tokens_per_s")
    steps, seconds, last_tokens, total = [0], [0.0], 0.0, 0.0
    for point in rates:
        tokens = seen.get(point["step"])
        if tokens is None or point["value"] <= 0:
            continue
        total += max(tokens - last_tokens, 0.0) / point["value"]
        last_tokens = tokens
        steps.append(point["step"])
        seconds.append(total)
    per_step = next((seen[s] / s for s in sorted(seen) if s > 0), 0.0)
    return steps, seconds, per_step


def _interpolate(xs: list[int], ys: list[float], x: int) -> float:
    i = bisect.bisect_left(xs, x)
    if i < len(xs) and xs[i] == x:
        return ys[i]
    if i == 0 or i >= len(xs):  # past the last logged row: extend at the last rate
        if len(xs) < 2:
            return float("nan")
        return ys[-1] + (x - xs[-1]) * (ys[-1] - ys[-2]) / max(xs[-1] - xs[-2], 1)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / max(x1 - x0, 1)


def bpb_curve(records: list[dict[str, Any]], result: dict[str, Any] | None) -> list[dict[str, float]]:
    """[{step, tokens, seconds, compute, bpb}] for every validation eval (the final one from result.json).

    compute: device-seconds of all work but evaluation up to that eval (logged with it), NaN for runs
    recorded before compute accounting.
    """
    steps, seconds, per_step = _elapsed(records)
    spent = {p["step"]: p["value"] for p in metric_series(records, "compute/seconds")}
    if result and result.get("step"):
        per_step = result["tokens"] / result["step"]
    curve = []
    for point in metric_series(records, "val/bpb"):
        step = point["step"]
        if result and step == result.get("step"):
            secs, tokens = float(result["train_seconds"]), float(result["tokens"])
        else:
            secs, tokens = _interpolate(steps, seconds, step), step * per_step
        used = result.get("compute_seconds") if result and step == result.get("step") else None
        compute = float(used if used is not None else spent.get(step, float("nan")))
        curve.append({"step": step, "tokens": tokens, "seconds": secs, "compute": compute, "bpb": point["value"]})
    return curve


def sleep_series(records: list[dict[str, Any]]) -> dict[str, list[dict[str, float]]]:
    """Every `sleep/<name>` metric over steps (empty for families that never sleep)."""
    keys = sorted({k for r in records if r.get("kind") == "metrics" for k in r["metrics"] if k.startswith("sleep/")})
    return {k: [{"step": p["step"], "value": p["value"]} for p in metric_series(records, k)] for k in keys}


def last_samples(store: Store, run_path: str) -> tuple[str, int | None]:
    names = [n for n in store.listdir(run_path, "samples") if n.startswith("step_") and n.endswith(".txt")]
    if not names:
        return "", None
    name = max(names)
    return store.read_bytes(run_path, "samples", name).decode("utf-8", "replace"), int(name[5:-4])


def infer_bound(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """For runs that were not one sweep: what bounded them, in words (unequal budgets are said to be unequal)."""
    from nightshift.orchestrator.sweeps.spec import MINUTES_STEP_CAP

    minutes = {float(c["budget_minutes"] or 0) for c in cells}
    steps = sorted({c["steps_planned"] for c in cells})
    if len(minutes) > 1:
        return {"kind": "mixed", "value": None,
                "text": "runs with different wall-clock budgets: not an equal-budget comparison"}
    cap = minutes.pop()
    per_minute = f"{cap:g} minute{'s' if cap != 1 else ''} of compute (all work but evaluation)"
    if cap and steps == [MINUTES_STEP_CAP]:
        return {"kind": "minutes", "value": cap, "text": f"{per_minute} per run"}
    if len(steps) == 1:
        text = f"{steps[0]:,} steps per run" + (f", at most {per_minute}" if cap else "")
        return {"kind": "steps", "value": steps[0], "text": text}
    text = f"runs of {len(steps)} different step counts ({', '.join(f'{s:,}' for s in steps)})"
    text += f", each at most {per_minute}" if cap else ": not an equal-budget comparison"
    return {"kind": "mixed", "value": None, "text": text}


def seed_summary(cells: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """{variant: {size: {mean, std, min, max, n, seeds, within_spread_of_best}}} over the finished seeds.

    std is the sample standard deviation (None for one seed: the spread is then unknown).
    within_spread_of_best: this variant's mean is within the summed spreads of the best
    (lowest-mean) variant at that size, i.e. the difference is not established by these seeds.
    """
    import statistics

    groups: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for c in cells:
        if c.get("val_bpb") is not None:
            groups.setdefault(c["variant"], {}).setdefault(c["size_bytes"], []).append(c)
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for variant, sizes in groups.items():
        for size, members in sizes.items():
            values = [m["val_bpb"] for m in members]
            out.setdefault(variant, {})[size] = {
                "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
                "min": min(values), "max": max(values), "n": len(values), "seeds": sorted(m["seed"] for m in members)}
    for size in {s for v in out.values() for s in v}:
        present = [(v, out[v][size]) for v in out if size in out[v]]
        best_variant, best = min(present, key=lambda p: p[1]["mean"])
        for variant, row in present:
            if variant == best_variant or row["std"] is None or best["std"] is None:
                row["within_spread_of_best"] = None if variant != best_variant else False
            else:
                row["within_spread_of_best"] = row["mean"] - best["mean"] <= row["std"] + best["std"]
    return out

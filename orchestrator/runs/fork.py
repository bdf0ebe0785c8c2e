"""Fork: a new run from any checkpoint of another, with a config change and recorded lineage.

The parent is never touched. The child's first checkpoint is the parent's
state at that step, re-labelled with the child's config, so the ordinary
resume path continues it; its lineage (parent run + step) is stored beside
its config and becomes MLflow tags.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import RunConfig, build_run_config
from nightshift.orchestrator.runs.folders import RunDir, find_run
from nightshift.pipelines.store import FileSpec, Store

LINEAGE = FileSpec(what="fork lineage",
                   fix="restore it, or delete it (the run then no longer records which run it was forked from)",
                   fields={"parent_run_id": str, "parent_step": int})


def fork_run(store: Store, parent_id: str, step: int | None, sets: dict[str, str],
             steps: int | None = None) -> tuple[RunConfig, dict[str, Any]]:
    parent = find_run(store, parent_id)
    pcfg = parent.config
    trail = CheckpointTrail(store, pcfg.run_path)
    meta = trail.latest() if step is None else trail.meta(step)
    if meta is None:
        raise UserError(f"run {parent_id} has no checkpoint to fork from")
    model_sets = {k: v for k, v in dataclasses.asdict(pcfg.model.config).items()}
    train_sets = {k: v for k, v in dataclasses.asdict(pcfg.train).items()}
    merged = {**{f"model.{k}": _s(v) for k, v in model_sets.items()},
              **{f"train.{k}": _s(v) for k, v in train_sets.items()}}
    for key, value in sets.items():
        scope = key.partition(".")[0]
        if scope in ("model", "train"):
            merged[key] = value
        elif f"train.{key}" in merged and f"model.{key}" in merged:
            raise UserError(f"--set {key}: ambiguous, use model.{key} or train.{key}")
        elif f"train.{key}" in merged:
            merged[f"train.{key}"] = value
        else:
            merged[f"model.{key}"] = value
    child = build_run_config(pcfg.dataset_id, pcfg.model.name, merged, steps=steps)
    if child.run_id == pcfg.run_id:
        raise UserError("fork changes nothing: give --set key=value (or --steps) that differs from the parent")
    if child.train.steps <= meta["step"]:
        raise UserError(f"fork at step {meta['step']} needs steps > {meta['step']}, got {child.train.steps}; "
                        f"add --steps N")
    state = trail.load(meta["step"])
    state["config"] = child.to_dict()
    if state.get("scheduler") is not None and child.train.lr != pcfg.train.lr:
        state["scheduler"]["base_lrs"] = [child.train.lr for _ in state["scheduler"]["base_lrs"]]
        for group in state["optimizer"]["param_groups"]:
            group["initial_lr"] = child.train.lr
    run = RunDir(store, child)
    if CheckpointTrail(store, child.run_path).latest() is not None:
        raise UserError(f"fork {child.run_id} already exists; resume it with "
                        f"`nightshift train --resume {child.run_id}`")
    run.write_config()
    lineage = {"parent_run_id": pcfg.run_id, "parent_step": meta["step"], "parent_checkpoint": meta["path"],
               "changes": sets, "steps": steps}
    store.write_json(lineage, *child.run_path, "lineage.json")
    CheckpointTrail(store, child.run_path).save(state, meta["step"], None, forked_from=pcfg.run_id)
    return child, lineage


def lineage_of(store: Store, config: RunConfig) -> dict[str, Any] | None:
    if store.exists(*config.run_path, "lineage.json"):
        return store.read_json(*config.run_path, "lineage.json", spec=LINEAGE)
    return None


def _s(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)

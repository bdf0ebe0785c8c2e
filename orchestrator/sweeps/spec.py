"""What a sweep is: its spec and id, its cells (one RunConfig each), and its plan (every size prepared).

A sweep is addressed by content like everything else: `sweep_id` hashes its
spec (source, sizes, models, seeds, bound, overrides), so running the same
sweep again finds the same MLflow parent run and the same cells. Each size is
prepared once (dataset ids make a re-run a no-op; every size of one source
shares the validation split).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from nightshift.models.registry import FAMILIES
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import RunConfig, build_run_config, parse_sets
from nightshift.orchestrator.runs.tags import experiment_name, git_commit
from nightshift.pipelines.ids import content_id
from nightshift.pipelines.sizes import format_size
from nightshift.pipelines.store import Store

log = logging.getLogger(__name__)

FORMAT = "nightshift.sweep/1"
MINUTES_STEP_CAP = 1_000_000  # a wall-clock-bound cell stops on time; this only caps (and shapes the LR schedule)
SWEEP_TAG = "sweep.id"


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepConfig:
    """What a sweep compares; all of it goes into the sweep id (the backend does not).

    The bound is one of steps / tokens / epochs (or the recipes' steps), optionally with
    `budget_minutes` as a wall-clock cap on top; `budget_minutes` alone bounds by time.
    """

    source: str  # pg19 | fineweb | ... | local:PATH
    sizes: tuple[int, ...]  # training bytes per dataset, e.g. (1_000_000, 4_000_000)
    models: tuple[str, ...]  # family:flavor per variant
    seeds: tuple[int, ...] = (0,)
    steps: int | None = None  # bound: optimizer steps per cell
    tokens: int | None = None  # bound: training tokens per cell (steps = ceil(tokens / (batch x seq_len)))
    epochs: float | None = None  # bound: passes over each size's training tokens (equal data per byte of a size)
    budget_minutes: float = 0.0  # minutes of all work per cell but evals/checkpoints (sleep counts): bound or cap
    evals: int = 4  # periodic validation evals per cell (the curves); the final one always runs
    valid_bytes: int = 1_000_000  # validation text, the same bytes for every size
    tokenizer: str = "gpt2"
    sets: tuple[str, ...] = ()  # KEY=VALUE for every cell; FAMILY.KEY=VALUE for one family's cells

    def __post_init__(self) -> None:
        if self.source.startswith("local:"):  # one folder named two ways is one sweep (as in PrepareConfig)
            object.__setattr__(self, "source", "local:" + os.path.realpath(os.path.expanduser(self.source[6:])))
        for name in ("sizes", "models", "seeds", "sets"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def validate(self) -> None:
        if not self.sizes or not self.models or not self.seeds:
            raise UserError("a sweep needs at least one size, one model and one seed, e.g. --sizes 1MB,4MB")
        for what, values in (("--sizes", self.sizes), ("--models", self.models), ("--seeds", self.seeds)):
            if len(set(values)) != len(values):
                raise UserError(f"{what} lists a value twice: {', '.join(map(str, values))}")
        if any(s < 0 for s in self.seeds):
            raise UserError(f"--seeds {self.seeds}: seeds must be >= 0")
        given = [f"--{n}" for n in ("steps", "tokens", "epochs") if getattr(self, n) is not None]
        if len(given) > 1:
            raise UserError(f"{' and '.join(given)}: give one of --steps, --tokens, --epochs "
                            "(--budget-minutes may cap any of them)")
        for name in ("steps", "tokens", "epochs"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"--{name} {value}: must be > 0")
        if self.budget_minutes < 0 or self.evals < 0:
            raise UserError("--budget-minutes and --evals must be >= 0")
        families = {m.partition(":")[0] for m in self.models}
        for key in parse_sets(list(self.sets)):
            scope = key.partition(".")[0]
            if scope in FAMILIES and scope not in families:
                raise UserError(f"--set {key}: no {scope} variant in --models ({', '.join(self.models)})")

    @property
    def bound(self) -> dict[str, Any]:
        """How each cell is bounded, in words the report prints."""
        cap = self.budget_minutes
        minutes = f"{cap:g} minute{'s' if cap != 1 else ''}"
        capped = (f"; at most {minutes} of compute (all work but evaluation and checkpoints; cells stopped by it "
                  "read 'budget')" if cap else "")
        if self.tokens is not None:
            text = f"{self.tokens:,} training tokens per cell (steps = tokens / (batch x seq_len))"
            return {"kind": "tokens", "value": self.tokens, "cap_minutes": cap, "text": text + capped}
        if self.epochs is not None:
            text = f"{self.epochs:g} epoch{'s' if self.epochs != 1 else ''} of each size's training tokens per cell"
            return {"kind": "epochs", "value": self.epochs, "cap_minutes": cap, "text": text + capped}
        if self.steps is not None:
            return {"kind": "steps", "value": self.steps, "cap_minutes": cap,
                    "text": f"{self.steps:,} steps per cell{capped}"}
        if cap:
            return {"kind": "minutes", "value": cap, "cap_minutes": cap,
                    "text": f"{minutes} of compute per cell (all work but evaluation and checkpoints: train steps, "
                            "data loading, sleep)"}
        return {"kind": "steps", "value": None, "cap_minutes": 0.0, "text": "each variant's recipe steps"}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @property
    def sweep_id(self) -> str:
        src = self.source[6:] if self.source.startswith("local:") else self.source
        slug = f"sweep-{os.path.basename(src.rstrip('/')) or 'data'}-{len(self.sizes)}x{len(self.models)}"
        return content_id(slug, {"format": FORMAT, **self.to_dict()})


@dataclass(frozen=True, slots=True, kw_only=True)
class Cell:
    size_bytes: int
    model: str
    seed: int
    config: RunConfig

    @property
    def run_id(self) -> str:
        return self.config.run_id

    @property
    def label(self) -> str:
        return f"{self.model}@{format_size(self.size_bytes)}/s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        m = self.config.model
        return {"size_bytes": self.size_bytes, "size": format_size(self.size_bytes), "model": self.model,
                "family": m.family, "flavor": m.flavor, "seed": self.seed, "dataset_id": self.config.dataset_id,
                "model_id": self.config.model_id, "run_id": self.run_id, "steps": self.config.train.steps,
                "run_path": "/".join(self.config.run_path)}


@dataclass(slots=True, kw_only=True)
class SweepPlan:
    spec: SweepConfig
    datasets: dict[int, dict[str, Any]]  # size -> {dataset_id, validation_id, train_bytes, ...}
    cells: list[Cell]
    experiment: str
    states: dict[str, dict[str, Any]] = field(default_factory=dict)  # run_id -> {state, error, ...}
    references_seconds: float | None = None  # time spent on the reference compressors by this call (cached: ~0)
    commit: str = field(default_factory=git_commit)

    @property
    def sweep_id(self) -> str:
        return self.spec.sweep_id

    def manifest(self, parent_run_id: str | None, tracking_uri: str | None) -> dict[str, Any]:
        from nightshift.orchestrator.tracking.sanitize import redact_text

        return {"format": FORMAT, "sweep_id": self.sweep_id, "spec": self.spec.to_dict(), "bound": self.spec.bound,
                "experiment": self.experiment, "parent_run_id": parent_run_id or None,
                "tracking_uri": redact_text(tracking_uri) if tracking_uri else None,
                "validation_id": next(iter(self.datasets.values()))["validation_id"],
                "datasets": [{"size_bytes": s, **d} for s, d in self.datasets.items()],
                "cells": [{**c.to_dict(), **self.states.get(c.run_id, {})} for c in self.cells],
                "references_seconds": self.references_seconds, "git_commit": self.commit,
                "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def plan_sweep(spec: SweepConfig, store: Store, *, actors: int = 0, progress: bool = True) -> SweepPlan:
    """Prepare every size once (a no-op when prepared) and build every cell's RunConfig (errors before training)."""
    from nightshift.pipelines.prepare import PrepareConfig, prepare

    spec.validate()
    sets = parse_sets(list(spec.sets))
    for model in spec.models:  # a bad model name or --set fails here, before minutes of data preparation
        build_run_config("check-000000000000", model, _sets_for(model, sets))
    datasets: dict[int, dict[str, Any]] = {}
    for size in spec.sizes:
        manifest = prepare(PrepareConfig(source=spec.source, max_bytes=size, valid_bytes=spec.valid_bytes,
                                         tokenizer=spec.tokenizer), store, actors=actors, progress=progress)
        splits = manifest.data["splits"]
        datasets[size] = {"dataset_id": manifest.dataset_id, "validation_id": splits["validation"]["validation_id"],
                          "validation_sha256": splits["validation"].get("text_sha256"),
                          "train_bytes": splits["train"]["totals"]["bytes"],
                          "train_tokens": splits["train"]["totals"]["tokens"],
                          "validation_bytes": splits["validation"]["totals"]["bytes"]}
    validation = {d["validation_id"] for d in datasets.values()}
    if len(validation) != 1:  # by construction never; a sweep scored on different bytes must not happen silently
        raise UserError(f"sizes of {spec.source} do not share one validation split ({sorted(validation)})")
    experiment = experiment_name(manifest.data["config"]["source"])
    cells = [Cell(size_bytes=size, model=model, seed=seed,
                  config=_cell_config(spec, datasets[size], model, seed, _sets_for(model, sets), store))
             for size in spec.sizes for model in spec.models for seed in spec.seeds]
    return SweepPlan(spec=spec, datasets=datasets, cells=cells, experiment=experiment)


def _sets_for(model: str, sets: dict[str, str]) -> dict[str, str]:
    """Every unscoped --set, plus `FAMILY.KEY` ones of this model's family (scope removed; they win)."""
    family = model.partition(":")[0]
    common = {k: v for k, v in sets.items() if k.partition(".")[0] not in FAMILIES}
    scoped = {k.partition(".")[2]: v for k, v in sets.items() if k.partition(".")[0] == family}
    return {**common, **scoped}


def _cell_config(spec: SweepConfig, dataset: dict[str, Any], model: str, seed: int, user_sets: dict[str, str],
                 store: Store) -> RunConfig:
    """The cell's RunConfig: the variant's recipe, the sweep's bound and eval cadence, then the user's --set."""
    dataset_id = dataset["dataset_id"]
    base = build_run_config(dataset_id, model, user_sets, seed=seed)
    kind = spec.bound["kind"]
    if kind in ("tokens", "epochs"):
        tokens = spec.tokens if kind == "tokens" else spec.epochs * dataset["train_tokens"]
        steps = max(1, math.ceil(tokens / (base.train.batch_size * _train_seq_len(base, store))))
    elif kind == "minutes":
        steps = MINUTES_STEP_CAP
    else:
        steps = spec.steps or base.train.steps
    ours: dict[str, str] = {}
    if spec.budget_minutes:
        ours["budget_minutes"] = str(spec.budget_minutes)
    if kind != "minutes" and "eval_every" not in user_sets and "train.eval_every" not in user_sets:
        ours["eval_every"] = str(math.ceil(steps / spec.evals) if spec.evals else 0)
    return build_run_config(dataset_id, model, {**ours, **user_sets}, steps=steps, seed=seed)


def _train_seq_len(config: RunConfig, store: Store) -> int:
    """Training window length (it may depend on the vocab): build the model once, it is cheap."""
    from nightshift.orchestrator.runs.vocab import vocab_of
    from nightshift.pipelines.reader import open_dataset

    vocab = vocab_of(open_dataset(store, config.dataset_id).tokenizer())
    return int(config.model.config.build(vocab).train_seq_len)


# ----------------------------------------------------------------------------- the sweep

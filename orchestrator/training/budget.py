"""Compute accounting: what every run spent, by kind of work, and the budget that counts all of it.

A budget that counts only `train_step` flatters the families whose cost sits
elsewhere (the attractor's sleep takes optimizer steps, the memory families
consolidate and maintain memory). So a run measures, in wall seconds on each
process, its train steps, data loading, sleep / consolidation, evaluation,
checkpoints and samples; `budgeted` is all of it but evaluation, checkpoints
and samples (what a user would call "training"), and device-seconds are that
times the number of devices. `--budget-minutes` and `budget_device_seconds`
bound `budgeted`. A budget-bound run plans its length from the measured cost of
its first steps (BudgetPlanner), so its LR schedule can end where the run ends.

Compilation is its own kind, `compile`, outside the budget: torch's own clock
of it (dynamo tracing, inductor code generation, the backward compiled at the
first backward) is read around every timed piece of work and moved out of that
kind. A cold compile cache (tens of seconds) and a warm one then buy the same
steps for the same budget, and a user's first comparison does not depend on
whether a cache existed.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from nightshift.orchestrator.runs.config import TrainConfig

KINDS = ("step", "data", "sleep", "eval", "final_eval", "ablation", "checkpoint", "samples", "compile")
BUDGETED = ("step", "data", "sleep")  # everything but evaluation, checkpoints, samples and compilation
# torch's timers of compilation (torch._dynamo.utils.compilation_time_metrics, seconds): a whole dynamo compile
# (tracing + inductor, forward) and the backward graph compiled lazily at its first backward
COMPILE_TIMERS = ("_compile.compile_inner", "backward._backward_impl")


def compile_seconds() -> float:
    """Seconds this process has spent compiling so far, by torch's own clock (0 where torch keeps none)."""
    utils = sys.modules.get("torch._dynamo.utils")  # never imported: nothing was compiled
    metrics = getattr(utils, "compilation_time_metrics", None)
    if not isinstance(metrics, dict):
        return 0.0
    return float(sum(sum(metrics.get(key, ())) for key in COMPILE_TIMERS))
# Steps at which a budget-bound run re-estimates its length: from the first step on (a slow machine may fit only
# a handful of steps in the budget, and the schedule must fit those), then as the measured cost firms up.
# Dense enough that a sleep phase's cost (it comes every few dozen steps) is in the plan before the budget runs out.
REPLAN_AT = (1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024)


@dataclass(slots=True)
class ComputeMeter:
    """Seconds per kind of work on this process (part of every checkpoint: resumes keep counting)."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))

    def add(self, kind: str, seconds: float) -> None:
        self.seconds[kind] = self.seconds.get(kind, 0.0) + max(seconds, 0.0)

    def add_work(self, kind: str, seconds: float, compiled: float) -> None:
        """`seconds` of `kind`, of which `compiled` were compilation: that part is booked as `compile`."""
        compiled = min(max(compiled, 0.0), max(seconds, 0.0))
        self.add("compile", compiled)
        self.add(kind, seconds - compiled)

    @contextmanager
    def timed(self, kind: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), compile_seconds()
        try:
            yield
        finally:
            self.add_work(kind, time.perf_counter() - t0, compile_seconds() - c0)

    @property
    def budgeted(self) -> float:
        """Wall seconds of all work but evaluation, checkpoints, samples and compilation (what budgets bound)."""
        return sum(self.seconds.get(k, 0.0) for k in BUDGETED)

    def summary(self, world_size: int) -> dict[str, Any]:
        """For result.json: device-seconds in total and by kind (evaluation, checkpoints apart)."""
        by_kind = {k: v * world_size for k, v in self.seconds.items()}
        return {"compute_seconds": self.budgeted * world_size, "compute": by_kind}

    def state_dict(self) -> dict[str, float]:
        return dict(self.seconds)

    @classmethod
    def from_state(cls, state: dict[str, float] | None) -> "ComputeMeter":
        meter = cls()
        meter.seconds.update(state or {})
        return meter


def budget_seconds(cfg: TrainConfig, world_size: int) -> float:
    """The per-process wall-seconds bound of `budgeted` (0: no budget); the tighter of the two settings."""
    limits = []
    if cfg.budget_minutes:
        limits.append(60.0 * cfg.budget_minutes)
    if cfg.budget_device_seconds:
        limits.append(cfg.budget_device_seconds / max(world_size, 1))
    return min(limits) if limits else 0.0


def steps_that_fit(limit: float, used: float, first_step: float, done: int) -> int:
    """Steps that fit in `limit` seconds at the cost measured so far (the first, slower step left out)."""
    later = max(done - 1, 1)
    per_step = max((used - first_step) / later if done > 1 else used, 1e-9)
    return math.floor(done + (limit - used) / per_step)


def planned_steps(limit: float, used: float, first_step: float, done: int, cap: int) -> int:
    """The plan: what fits, at least one more step, at most the run's own cap."""
    return max(done + 1, min(cap, steps_that_fit(limit, used, first_step, done)))


class TimedReader:
    """Wraps the training reader so data loading is counted as its own kind of work."""

    def __init__(self, reader: Any, meter: ComputeMeter) -> None:
        self.inner, self.meter = reader, meter

    def __iter__(self) -> "TimedReader":
        return self

    def __next__(self) -> Any:
        t0 = time.perf_counter()
        try:
            return next(self.inner)
        finally:
            self.meter.add("data", time.perf_counter() - t0)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def train_flops(model: Any, samples: int) -> float | None:
    """Estimated training FLOPs of the train steps (gradient families; None where a count means little)."""
    per_sample = model.train_flops_per_sample()
    return None if per_sample is None else float(per_sample) * samples

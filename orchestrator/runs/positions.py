"""Predicted positions: the unit a giant run's flags count, and the step size that keeps its cadences true.

In the original holographic run a *sample* is one context window and its next
token: the loop slides over each document and counts one per predicted position,
and `--sleep-every`, `--log-every`, `--generate-every`, `--deep-log-every` count
the same thing. Our trainer steps over rows of T + 1 tokens; a row yields
`positions_per_row` predicted positions (T for a next-token model, the full
windows for holographic). A step must not hold more positions than the shortest
cadence, else two sleeps (or log lines) would fall in one step and one of them
would be lost: `fit_step` sizes the row and the batch for that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nightshift.models.footprint import RunShape
from nightshift.models.protocol import Vocab
from nightshift.orchestrator.runs.config import RunConfig


def positions_per_row(config: RunConfig) -> int:
    """Predicted positions per training row, from the model config (no model is built)."""
    cfg = config.model.config
    own = getattr(cfg, "positions_per_row", None)
    if own is not None:
        return int(own)
    shape = RunShape(steps=1, batch_size=1)
    return int(cfg.footprint(Vocab("gpt2", 50257, 50256), shape).seq_len)  # next-token models predict all T


@dataclass(frozen=True, slots=True)
class StepSize:
    """One step of a positions run: `batch` rows of `row_positions` predicted positions each."""

    batch: int
    row_positions: int
    row_set: bool  # the row was shortened to fit the shortest cadence (model.row_positions)

    @property
    def positions(self) -> int:
        return self.batch * self.row_positions


def fit_step(per_row: int, shortest: int | None, recipe_batch: int, world: int, *,
             can_shorten_row: bool, batch_given: int | None = None) -> StepSize:
    """The largest step (<= the recipe's batch) whose positions fit in the shortest cadence, the batch a
    multiple of the DDP world (each rank takes an equal share). `batch_given` (--batch-size) wins."""
    row, row_set = per_row, False
    if shortest and can_shorten_row and per_row > shortest:
        row, row_set = shortest, True
    if batch_given is not None:
        return StepSize(batch_given, row, row_set)
    world = max(1, world)
    batch = recipe_batch
    if shortest:
        batch = min(batch, max(1, shortest // row))
    batch = max(world, batch // world * world)
    return StepSize(batch, row, row_set)


def steps_for(positions: int, step: StepSize) -> int:
    return max(1, math.ceil(positions / step.positions))


@dataclass(frozen=True, slots=True)
class Counts:
    """What a positions run does: derived from the same rule the trainer's Cadence applies."""

    steps: int
    step_positions: int
    positions: int
    sleeps: int
    log_lines: int
    evaluations: int  # periodic ones; the final evaluation comes on top
    generations: int  # periodic ones; the final samples come on top


def counts(steps: int, step_positions: int, *, log_every: int, eval_every: int, sample_every: int,
           sleep_every: int) -> Counts:
    total = steps * step_positions
    last_before = total - step_positions

    def fired(every: int) -> int:
        return total // every if every else 0

    def at_last(every: int) -> bool:
        return bool(every) and total // every > last_before // every

    return Counts(
        steps=steps, step_positions=step_positions, positions=total,
        sleeps=fired(sleep_every),
        log_lines=fired(log_every) + (0 if at_last(log_every) else 1),
        evaluations=fired(eval_every) - (1 if at_last(eval_every) else 0),
        generations=fired(sample_every) - (1 if at_last(sample_every) else 0),
    )

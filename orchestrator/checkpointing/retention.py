"""Which checkpoints of a trail are kept: the newest K, plus every one whose step is a multiple of E.

Why: every checkpoint used to be kept forever, so a long run's disk grew with its
length, not with what anyone uses. Resume needs the newest checkpoint, and the
few before it are the fallback when the newest is damaged (`load_newest` walks
back past it) and what a divergence rollback restores; older ones matter only
as fork points and for comparisons, which `every` keeps at a fixed cadence
(e.g. every 10,000 steps) however long the run.

The rule is a pure function of the step numbers, so the trainer, the planner's
disk figure (`retained_count`) and a test all agree on what stays on disk.
Deleting is the trail's job (trail.py), done after the pointer is written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from nightshift.orchestrator.errors import UserError


@dataclass(frozen=True, slots=True)
class Retention:
    """Keep the newest `keep` checkpoints, and also each one whose step is a multiple of `every` (0: none).

    From `TrainConfig`: `Retention(cfg.keep_checkpoints, cfg.keep_every)`.
    """

    keep: int = 3
    every: int = 0

    def __post_init__(self) -> None:
        if self.keep < 1:  # resume needs the newest one
            raise UserError(f"keep_checkpoints={self.keep} must be >= 1 (resume needs one)")
        if self.every < 0:
            raise UserError(f"keep_every={self.every} must be >= 0 (0 keeps none beyond the newest keep_checkpoints)")

    def kept(self, steps: Iterable[int]) -> set[int]:
        """The steps of `steps` this rule keeps: the `keep` largest, plus the multiples of `every` (every > 0).

        Step numbers, not write order: a trail's checkpoints are its steps, and the
        newest one is the largest step. (Step 0, when checkpointed, is a multiple of
        any `every` and so kept.)
        """
        distinct = sorted(set(steps))
        out = set(distinct[-self.keep:])
        if self.every > 0:
            out |= {s for s in distinct if s % self.every == 0}
        return out

    def describe(self) -> str:
        """The settings in the words a user sets them with (for messages)."""
        return f"keep_checkpoints={self.keep}" + (f", keep_every={self.every}" if self.every else "")


def retained_count(n_checkpoints: int, steps_between: int, keep: int, every: int) -> int:
    """How many checkpoints are on disk at the end of a run that wrote `n_checkpoints`, at steps
    `steps_between`, 2 x `steps_between`, ..., n x `steps_between`, under `Retention(keep, every)`.

    For the planner's disk figure: what is on disk once the last save (and its
    pruning) is done. While a save is being written, the one being written is on
    disk too, before the older ones are pruned: the peak is
    `retained_count(n - 1, ...) + 1` (at most this + 1); adding that 1 is the
    caller's business. Chunked checkpoints share chunks, so bytes are not simply
    count x size: that too is the caller's business.

    Closed form (a planner may ask about millions of checkpoints): the newest
    min(keep, n), plus the multiples of `every` among the older n - keep. Step
    i x b is a multiple of `every` exactly when i is a multiple of
    every / gcd(b, every). Assumes that regular cadence: checkpoints off it (timed
    ones from `checkpoint_minutes`, a final one at a step not a multiple of
    `steps_between`) are still counted among the newest `keep`, but may or may not
    be multiples of `every`, so the true count can differ by those few.
    """
    if n_checkpoints < 0 or steps_between < 1:
        raise ValueError(f"retained_count: n_checkpoints={n_checkpoints} must be >= 0 and "
                         f"steps_between={steps_between} >= 1")
    Retention(keep, every)  # the same validation as the trail's
    newest = min(keep, n_checkpoints)
    older = n_checkpoints - newest
    if every <= 0 or older <= 0:
        return newest
    period = every // math.gcd(steps_between, every)  # in checkpoints
    return newest + older // period

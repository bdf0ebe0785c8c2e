"""When the loop logs, evaluates, samples and sleeps: every N steps, or every N predicted positions.

A predicted position is one context window and its next token (models/protocol.py:
`positions_per_row`), the unit the giant run's flags count ("samples" in the
original). With `cadence_unit="positions"` a cadence fires at the step whose
running count crosses a multiple of it, so a run of P positions with `log_every=L`
logs floor(P / L) times whatever the step size (plus the final step's line). A step
holds at most one multiple when its positions do not exceed the cadence; the
giant planner sizes the step so (orchestrator/runs/positions.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from nightshift.orchestrator.runs.config import TrainConfig


@dataclass(frozen=True, slots=True)
class Tick:
    """Counters before and after one step: steps, sequences and predicted positions."""

    step_before: int
    step_after: int
    samples_after: int
    positions_before: int
    positions_after: int


def crossed(before: int, after: int, every: int) -> bool:
    """True when (before, after] holds a multiple of `every` (0: never)."""
    return every > 0 and after // every > before // every


@dataclass(frozen=True, slots=True)
class Cadence:
    """The loop's "is it time?" questions for one TrainConfig."""

    cfg: TrainConfig

    @property
    def positions(self) -> bool:
        return self.cfg.cadence_unit == "positions"

    def _due(self, tick: Tick, every: int) -> bool:
        if self.positions:
            return crossed(tick.positions_before, tick.positions_after, every)
        return crossed(tick.step_before, tick.step_after, every)

    def log(self, tick: Tick, last: int) -> bool:
        return self._due(tick, self.cfg.log_every) or tick.step_after == last

    def eval(self, tick: Tick, last: int) -> bool:
        return self._due(tick, self.cfg.eval_every) and tick.step_after < last

    def sample(self, tick: Tick, last: int) -> bool:
        return self._due(tick, self.cfg.sample_every) and tick.step_after < last

    def sleeps_due(self, tick: Tick) -> int:
        """Sleeps the run owes by now: one per `sleep_every` sequences (steps unit) or positions."""
        every = self.cfg.sleep_every
        if not every:
            return 0
        return (tick.positions_after if self.positions else tick.samples_after) // every

"""Rollback on divergence: restore the last good checkpoint, skip the offending batches, go on.

What large-model practice does when a loss spikes: restart a little earlier
and skip the data that led there, optionally at a lower LR. A run that keeps
diverging stops with a clear message instead of looping forever. The loss
history and the rollback record are part of every checkpoint, so a resumed
run detects a spike at its first step and counts rollbacks across restarts.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nightshift.orchestrator.errors import UserError

if TYPE_CHECKING:
    from nightshift.orchestrator.training.trainer import Trainer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class DivergenceGuard:
    spike_factor: float
    window: int
    skip: int
    lr_factor: float
    max_rollbacks: int
    period: int
    history: deque = field(default_factory=deque)
    rollback_steps: list[int] = field(default_factory=list)

    @classmethod
    def from_config(cls, cfg) -> "DivergenceGuard":  # noqa: ANN001 - TrainConfig
        return cls(spike_factor=cfg.spike_factor, window=cfg.spike_window, skip=cfg.rollback_skip,
                   lr_factor=cfg.rollback_lr_factor, max_rollbacks=cfg.max_rollbacks, period=cfg.rollback_period,
                   history=deque(maxlen=cfg.spike_window))

    def state_dict(self) -> dict[str, list]:
        return {"history": [float(x) for x in self.history], "rollback_steps": list(self.rollback_steps)}

    def load_state_dict(self, state: dict[str, list]) -> None:
        """Resume the record: the saved loss history, and every rollback seen by any process of this run.

        Rollbacks are merged, not replaced: a rollback restores a checkpoint older
        than itself, and must not forget that it happened.
        """
        self.history.clear()
        self.history.extend(float(x) for x in state.get("history", [])[-self.window:])
        self.rollback_steps = sorted(set(self.rollback_steps) | {int(s) for s in state.get("rollback_steps", [])})

    def is_divergent(self, loss: float) -> str | None:
        if not math.isfinite(loss):
            return "non-finite loss"
        if self.spike_factor and len(self.history) >= min(self.window, 10):
            median = statistics.median(self.history)
            if median > 0 and loss > self.spike_factor * median:
                return f"loss spike {loss:.4g} > {self.spike_factor:g} x median {median:.4g}"
        return None

    def check(self, loss: float, trainer: "Trainer", bad_step: int | None = None) -> bool:
        """Return True when the run was rolled back (the steps since its checkpoint are gone).

        `bad_step` is the step whose loss this is (the trainer checks a window of steps
        at once: the losses reach the host only at its flush points, never per step).
        """
        reason = self.is_divergent(loss)
        if reason is None:
            self.history.append(loss)
            return False
        bad_step = trainer.state.step + 1 if bad_step is None else bad_step
        recent = [s for s in self.rollback_steps if bad_step - s <= self.period]
        if len(recent) >= self.max_rollbacks:
            raise UserError(f"training diverged: {reason} at step {bad_step} after {len(recent)} rollbacks "
                            f"within {self.period} steps; lower lr or raise max_rollbacks")
        rollbacks = trainer.state.rollbacks
        self.rollback_steps.append(bad_step)  # before restoring: the restored record merges with this one
        if not trainer.restore():  # the newest checkpoint that loads
            raise UserError(f"training diverged ({reason}) at step {bad_step} before the first checkpoint; "
                            "lower lr or set checkpoint_every smaller")
        latest = {"step": trainer.state.step}
        trainer.faults.forget_after(bad_step)  # drills only: the discarded steps after the bad one never ran
        trainer.state.rollbacks = rollbacks + 1
        skipped = (bad_step - latest["step"] + self.skip) * trainer.cfg.grad_accum
        for _ in range(skipped):
            next(trainer.reader)
        if self.lr_factor != 1.0 and trainer.scheduler is not None:
            trainer.scheduler.base_lrs = [lr * self.lr_factor for lr in trainer.scheduler.base_lrs]
            for group, base in zip(trainer.optimizer.param_groups, trainer.scheduler.base_lrs):
                group["lr"] = base * trainer.scheduler.lr_lambdas[0](trainer.scheduler.last_epoch)
        self.history.clear()
        detail = {"reason": reason, "bad_step": bad_step, "restored_step": latest["step"],
                  "skipped_batches": skipped, "rollbacks": trainer.state.rollbacks}
        log.warning("rollback: %s at step %d; restored step %d, skipped %d batches",
                    reason, bad_step, latest["step"], skipped)
        trainer.tracker.log_event("rollback", bad_step, detail)
        if trainer.env.is_main:
            trainer.run_dir.write_text(_line(detail), "events", f"rollback_{bad_step:08d}.json")
        return True


def _line(detail: dict) -> str:
    import json

    return json.dumps(detail, sort_keys=True)

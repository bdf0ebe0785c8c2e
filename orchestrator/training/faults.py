"""Fault injection for tests and drills, from NIGHTSHIFT_FAULTS (e.g. "nan@12,spike@30,pause@5:2.0").

Kinds: nan@K (loss becomes NaN at step K), spike@K:F (loss x F at step K), pause@K:S (hold S
seconds after step K), slow@K:S (every step from K on takes S seconds longer), slowckpt@0:S
(S seconds between a checkpoint's data, meta and pointer writes).

Real training never sets it. It lives here, not in tests, because the
faults must hit the real trainer loop (a NaN loss at step k, a slow step to
kill a process during) exactly as a diverging run or a preemption would.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ENV = "NIGHTSHIFT_FAULTS"


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # nan | spike | pause | slow | slowckpt
    step: int
    arg: float = 0.0


def parse_faults(text: str | None = None) -> tuple[Fault, ...]:
    text = os.environ.get(ENV, "") if text is None else text
    faults = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, rest = part.partition("@")
        step, _, arg = rest.partition(":")
        faults.append(Fault(kind=kind, step=int(step), arg=float(arg) if arg else 0.0))
    return tuple(faults)


class FaultDrill:
    """The faults one trainer injects into its own loop (none in real training), each loss fault once."""

    def __init__(self, faults: tuple[Fault, ...] | None = None) -> None:
        self.faults = parse_faults() if faults is None else faults
        self._fired: set[int] = set()

    def loss(self, loss: Any, step: int) -> Any:
        """The loss of `step`, made NaN or spiked when a fault says so."""
        for fault in self.faults:
            if fault.kind in ("nan", "spike") and fault.step == step and step not in self._fired:
                self._fired.add(step)
                return loss * float("nan") if fault.kind == "nan" else loss * (fault.arg or 100.0)
        return loss

    def forget_after(self, step: int) -> None:
        """A rollback discards the steps after `step`: loss faults fired there never happened, and fire
        when training reaches those steps again (the trainer judges losses a window at a time)."""
        self._fired = {s for s in self._fired if s <= step}

    def pause(self, step: int, stop_requested: Callable[[], bool]) -> None:
        """Hold still after `step` (a window to kill or signal the process); `slow` faults slow every step."""
        for fault in self.faults:
            if fault.kind == "slow" and step >= fault.step:
                time.sleep(fault.arg)
            if fault.kind == "pause" and fault.step == step:
                deadline = time.monotonic() + (fault.arg or 1.0)
                while time.monotonic() < deadline and not stop_requested():
                    time.sleep(0.05)

    def checkpoint_delay(self) -> float:
        """Seconds between a checkpoint's writes (`slowckpt`: widens the window a kill can hit)."""
        return sum(f.arg for f in self.faults if f.kind == "slowckpt")

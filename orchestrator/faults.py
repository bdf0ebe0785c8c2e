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
from dataclasses import dataclass

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

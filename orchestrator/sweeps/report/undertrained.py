"""Which cells of a comparison trained too little to be compared: marked, never hidden.

A budget that a slow first step (a compile, a cold cache) or a slow family
used up can leave a cell with a handful of steps; its figure then says more
about the budget than about the model. A cell is *undertrained* when it took
fewer than MIN_STEPS optimizer steps and saw less than MIN_EPOCHS of its
training tokens (a memory family that reads the whole set in 4 steps is not).
"""

from __future__ import annotations

from typing import Any

MIN_STEPS = 10  # fewer steps than this ...
MIN_EPOCHS = 1.0  # ... and less than this much of the training set: undertrained


def undertrained(cell: dict[str, Any]) -> str | None:
    """'undertrained: 1 step' for such a finished cell, else None (also for cells without a result)."""
    step, epochs = cell.get("step"), cell.get("epochs")
    if cell.get("val_bpb") is None or step is None or epochs is None:
        return None
    if step >= MIN_STEPS or epochs >= MIN_EPOCHS:
        return None
    return f"undertrained: {step} step{'s' if step != 1 else ''}, {epochs:.2g} epochs"

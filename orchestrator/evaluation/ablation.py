"""Ablations: the same trained state scored with one of its family's mechanisms switched off.

A family names its switchable mechanisms in `LanguageModel.ablatable`
(models/protocol.py: holographic `memory`, `prototypes`; macro_unit `units`;
attractor `relaxation`; the transformer none). Scoring each part off, beside
the full model, turns "what the memory adds" into a number: the trainer does it
after its final evaluation (result.json `ablations`, MLflow
`ablation/<part>/val_bpb`), `nightshift eval --ablate` on any checkpoint, and
the report shows both. A part whose switch changes nothing is a finding.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

from nightshift.models.protocol import LanguageModel, ablated
from nightshift.orchestrator.errors import UserError

R = TypeVar("R")


def parts_of(model: LanguageModel, requested: Collection[str] | None = None) -> tuple[str, ...]:
    """The parts to ablate: all the family declares, or the requested ones (unknown names are refused)."""
    declared = tuple(model.ablatable)
    if not requested:
        return declared
    unknown = sorted(set(requested) - set(declared))
    if unknown:
        raise UserError(f"--ablate {','.join(unknown)}: {model.family} has no such part; "
                        f"ablatable: {', '.join(declared) or 'none'}")
    return tuple(p for p in declared if p in requested)


def score_ablations(model: LanguageModel, score: Callable[[], R],
                    parts: Collection[str] | None = None) -> dict[str, R]:
    """{part: score() with that part off}, one part at a time; the model is left as it was found."""
    out: dict[str, R] = {}
    for part in parts_of(model, parts):
        with ablated(model, {part}):
            out[part] = score()
    return out


def ablation_metrics(scores: dict[str, float]) -> dict[str, float]:
    """MLflow metric names: `ablation/<part>/val_bpb`."""
    return {f"ablation/{part}/val_bpb": float(bpb) for part, bpb in scores.items()}

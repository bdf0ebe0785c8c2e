"""The tiny sweep every sweep test builds on, and what a recorded one holds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nightshift.orchestrator.sweeps.run import SweepOutcome
from nightshift.orchestrator.sweeps.spec import SweepConfig
from nightshift.pipelines.store import Store

MODELS = ("transformer:debug", "macro_unit:small")
SIZES = (100_000, 200_000)


CELL_SETS = ("sample_tokens=8", "log_every=3")


def tiny_spec(source: str, **overrides) -> SweepConfig:
    fields = {"sizes": SIZES, "models": MODELS, "steps": 6, "evals": 2, "valid_bytes": 8_000,
              "tokenizer": "bytes", "sets": CELL_SETS, **overrides}
    return SweepConfig(source=source, **fields)


@dataclass
class Recorded:
    store: Store
    spec: SweepConfig
    outcome: SweepOutcome
    uri: str
    report_dir: Path
    root: Path

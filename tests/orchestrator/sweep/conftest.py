"""One tiny recorded sweep (2 sizes x 2 variants of raw-byte pg19) shared by the sweep and report tests.

The pg19 sample is reached through a folder of symlinks named `pg19-sweep`, so
the sweep's MLflow experiment (`local-pg19-sweep`) is its own and never mixes
with the runs other tests log to the same session MLflow server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from nightshift.orchestrator.sweep import SweepConfig, SweepOutcome, run_sweep
from nightshift.pipelines.store import Store

MODELS = ("transformer:debug", "macro_unit:small")
SIZES = (100_000, 200_000)
CELL_SETS = ("sample_tokens=8", "log_every=3")


def alias_source(root: Path, pg19_dir: Path, name: str) -> str:
    """`local:<root>/<name>`: the pg19 sample's parquet files, symlinked (nothing copied)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation"):
        link = folder / f"{split}.parquet"
        if not link.exists():
            os.symlink(pg19_dir / f"{split}.parquet", link)
    return f"local:{folder}"


def tiny_spec(source: str, **overrides) -> SweepConfig:  # noqa: ANN003
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


@pytest.fixture(scope="session")
def recorded_sweep(tmp_path_factory: pytest.TempPathFactory, pg19_dir: Path, mlflow_server) -> Recorded:
    root = tmp_path_factory.mktemp("sweep")
    store = Store.open(str(root / "store"))
    spec = tiny_spec(alias_source(root, pg19_dir, "pg19-sweep"))
    report_dir = root / "report"
    outcome = run_sweep(spec, store, tracking_uri=mlflow_server.uri, progress=False, threads=1,
                        report_dir=str(report_dir))
    return Recorded(store=store, spec=spec, outcome=outcome, uri=mlflow_server.uri, report_dir=report_dir,
                    root=root)

"""Shared pieces of the fault tests: one small prepared store, one reference run, the CLI.

Every fault test trains the same short run (`STEPS` steps of transformer:debug on
raw-byte pg19, a checkpoint every 2 steps) in a copy of one prepared store, then
compares its final weights with one uninterrupted run's, bitwise.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from nightshift.orchestrator.training.trainer import Trainer
from nightshift.pipelines.store import Store
from tests.faults.helpers import (
    SETS,
    STEPS,
    TRAIN_FLAGS,
    Cli,
    Reference,
    interrupted_run,
    kill9,
    run_config,
    same_weights,
    spawn,
    wait_for,
    weights,
)
from tests.helpers.cli import nightshift
from tests.helpers.data import prepare_pg19
from tests.helpers.paths import ROOT

__all__ = ["ROOT", "STEPS", "SETS", "TRAIN_FLAGS", "Cli", "nightshift", "weights", "run_config", "interrupted_run",
           "same_weights", "spawn", "wait_for", "kill9"]


@pytest.fixture(scope="session")
def prepared_store(tmp_path_factory: pytest.TempPathFactory, pg19_dir: Path) -> tuple[Path, str]:
    """A store holding 200 KB of raw-byte pg19 (8 KB validation); tests copy it, never write into it."""
    root = tmp_path_factory.mktemp("faults-prepared") / "store"
    return root, prepare_pg19(root, pg19_dir, valid_bytes=8_000)


@pytest.fixture()
def store_copy(prepared_store: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    src, dataset_id = prepared_store
    dst = tmp_path / "store"
    shutil.copytree(src, dst)
    return dst, dataset_id




@pytest.fixture(scope="session")
def reference(prepared_store: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Reference:
    src, dataset_id = prepared_store
    dst = tmp_path_factory.mktemp("faults-reference") / "store"
    shutil.copytree(src, dst)
    config = run_config(dataset_id)
    info = Trainer(config, Store.open(str(dst)), progress_bar=False).run()
    assert info["step"] == STEPS
    size = next(dst.rglob("step_00000002/state.pt")).stat().st_size
    return Reference(weights=weights(dst, config.run_id), checkpoint_bytes=size, store=dst, run_id=config.run_id)












@pytest.fixture()
def cli(capsys: pytest.CaptureFixture) -> Callable[..., Cli]:
    """The real `nightshift` entry point in this process (no interpreter start-up: seconds per call on 2 cores).

    Log lines go to pytest's log capture (caplog) here, not to stderr; what the CLI prints is captured.
    """
    from nightshift.orchestrator.cli import main

    def call(*args: str) -> Cli:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Cli(code=code, out=captured.out, err=captured.err)

    return call







"""Shared pieces of the fault tests: one small prepared store, one reference run, the CLI.

Every fault test trains the same short run (`STEPS` steps of transformer:debug on
raw-byte pg19, a checkpoint every 2 steps) in a copy of one prepared store, then
compares its final weights with one uninterrupted run's, bitwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from nightshift.orchestrator.checkpoint import CheckpointTrail
from nightshift.orchestrator.config import RunConfig, build_run_config
from nightshift.orchestrator.runs import find_run
from nightshift.orchestrator.trainer import Hook, Trainer
from nightshift.pipelines.store import Store
from tests.orchestrator.conftest import ROOT, nightshift, prepare_pg19

STEPS = 8
SETS = {"checkpoint_every": "2", "eval_every": "0", "sample_tokens": "4", "log_every": "1", "batch_size": "4",
        "checkpoint_minutes": "0"}
TRAIN_FLAGS = ["--model", "transformer:debug", "--steps", str(STEPS), "--no-progress", "--json",
               *[a for k, v in SETS.items() for a in ("--set", f"{k}={v}")]]

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


@dataclass(frozen=True)
class Reference:
    weights: dict[str, torch.Tensor]  # final weights of the standard run, trained without any fault
    checkpoint_bytes: int  # size of one of its checkpoints
    store: Path  # the store it was trained in (read only: tests copy it)
    run_id: str


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


def run_config(dataset_id: str, steps: int = STEPS, **extra: str) -> RunConfig:
    return build_run_config(dataset_id, "transformer:debug", {**SETS, **extra}, steps=steps)


def weights(store_url: Path | str, run_id: str) -> dict[str, torch.Tensor]:
    store = Store.open(str(store_url))
    return CheckpointTrail(store, find_run(store, run_id).config.run_path).load()["model"]


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def interrupted_run(store_dir: Path, config: RunConfig, at_step: int, **kwargs) -> Trainer:  # noqa: ANN003
    """Train `config` until `at_step`, then stop as Ctrl-C would (checkpoint, status 'interrupted')."""
    def stop(trainer: Trainer, step: int) -> None:
        if step == at_step:
            trainer._stop.requested = True

    trainer = Trainer(config, Store.open(str(store_dir)), progress_bar=False, hooks=(Hook(stop),), **kwargs)
    result = trainer.run()
    assert result["stop_reason"] == "interrupted" and result["step"] == at_step
    return trainer


@dataclass(frozen=True)
class Cli:
    code: int
    out: str
    err: str


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


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The real CLI in the background (for kills and races)."""
    return subprocess.Popen([sys.executable, "-m", "nightshift.orchestrator.cli", *args], cwd=ROOT, text=True,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"process exited {proc.returncode} while waiting for {what}:\n{err[-3000:]}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()

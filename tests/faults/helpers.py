"""Fault tests' helpers: the run they break, its reference weights, CLI runs in and out of process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
from nightshift.orchestrator.runs.config import RunConfig, build_run_config
from nightshift.orchestrator.runs.folders import find_run
from nightshift.orchestrator.training.trainer import Hook, Trainer
from nightshift.pipelines.store import Store
from tests.helpers.paths import ROOT

STEPS = 8
SETS = {"checkpoint_every": "2", "eval_every": "0", "sample_tokens": "4", "log_every": "1", "batch_size": "4",
        "checkpoint_minutes": "0", "keep_every": "2"}  # keep every checkpoint: faults compare them


TRAIN_FLAGS = ["--model", "transformer:debug", "--steps", str(STEPS), "--no-progress", "--json",
               *[a for k, v in SETS.items() for a in ("--set", f"{k}={v}")]]


@dataclass(frozen=True)
class Reference:
    weights: dict[str, torch.Tensor]  # final weights of the standard run, trained without any fault
    checkpoint_bytes: int  # size of one of its checkpoints
    store: Path  # the store it was trained in (read only: tests copy it)
    run_id: str


def run_config(dataset_id: str, steps: int = STEPS, **extra: str) -> RunConfig:
    return build_run_config(dataset_id, "transformer:debug", {**SETS, **extra}, steps=steps)


def weights(store_url: Path | str, run_id: str) -> dict[str, torch.Tensor]:
    store = Store.open(str(store_url))
    return CheckpointTrail(store, find_run(store, run_id).config.run_path).load()["model"]


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def interrupted_run(store_dir: Path, config: RunConfig, at_step: int, **kwargs) -> Trainer:
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

"""A small real dataset (pg19 sample, raw bytes) prepared through the real pipeline, per test store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nightshift.pipelines.store import Store

ROOT = Path(__file__).resolve().parents[2]


def prepare_pg19(store_dir: Path, pg19_dir: Path, *, max_bytes: int = 200_000, valid_bytes: int = 30_000,
                 tokenizer: str = "bytes") -> str:
    from nightshift.pipelines.prepare import PrepareConfig, prepare

    config = PrepareConfig(source=f"local:{pg19_dir}", max_bytes=max_bytes, valid_bytes=valid_bytes,
                           tokenizer=tokenizer)
    return prepare(config, Store.open(str(store_dir)), actors=0, progress=False).dataset_id


@pytest.fixture()
def pg19_bytes(store_dir: Path, pg19_dir: Path) -> str:
    """Dataset id of 200 KB of pg19 training text as raw bytes, validation capped at 30 KB."""
    return prepare_pg19(store_dir, pg19_dir)


def nightshift(*args: str, env: dict[str, str] | None = None, check: bool = True,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "nightshift.orchestrator.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"nightshift {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc

"""Shared fixtures: the offline data samples in ../shared/data, tokenizers, real servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.paths import SHARED_DATA, TIKTOKEN_CACHE

pytest_plugins = ["tests.helpers.servers"]


# Offline tokenizers for every test and every subprocess a test starts.
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_CACHE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# idle OpenMP threads spin by default; on a busy 2-core box that makes small ops ~100x slower
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
# mlflow server otherwise forks a job runner and a dozen huey consumers per server: heavy on 2 cores
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data samples not found at {SHARED_DATA}; CI needs ../shared beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pg19_dir(shared_data: Path) -> Path:
    return shared_data / "pg19"


@pytest.fixture(scope="session")
def pg19_texts(pg19_dir: Path) -> dict[str, list[str]]:
    """{'train': [...], 'validation': [...]} book texts from the pg19 sample."""
    import pyarrow.parquet as pq

    return {split: pq.read_table(pg19_dir / f"{split}.parquet", columns=["text"]).column("text").to_pylist()
            for split in ("train", "validation")}


@pytest.fixture()
def store_dir(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path

"""A small real dataset (pg19 sample, raw bytes) prepared through the real pipeline, per test store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.data import prepare_pg19


@pytest.fixture()
def pg19_bytes(store_dir: Path, pg19_dir: Path) -> str:
    """Dataset id of 200 KB of pg19 training text as raw bytes, validation capped at 30 KB."""
    return prepare_pg19(store_dir, pg19_dir)



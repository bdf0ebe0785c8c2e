"""Fixtures for tracking tests: a store, fast tracker timings, and readers that go through MlflowClient."""

from __future__ import annotations

from pathlib import Path

import pytest

from nightshift.pipelines.store import Store


@pytest.fixture()
def store(store_dir: Path) -> Store:
    return Store.open(str(store_dir))





"""Fixtures for the data pipeline: a real local Ray on loopback, small prepared datasets, corpus writers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from nightshift.pipelines.prepare import PrepareConfig, prepare
from nightshift.pipelines.store import Store


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """One local Ray per test session (startup costs seconds); reuse one a test already started."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def pg19_small(pg19_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """pg19 sample: 1.5 MB train in ~8 shards, 300 KB validation in 2 shards (in-process tokenizer)."""
    store = Store.open(str(tmp_path_factory.mktemp("pg19-store")))
    config = PrepareConfig(source=f"local:{pg19_dir}", max_bytes=1_500_000, valid_bytes=300_000,
                           shard_bytes=200_000)
    manifest = prepare(config, store, actors=0, progress=False)
    return store, config, manifest





"""Engines tests: a tiny real dataset (pg19 sample as raw bytes), fresh stores, a Ray on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends.helpers import (
    TinyData,
    copy_datasets,
    prepare_tiny,
    short_tmp,
)


@pytest.fixture(scope="session")
def tiny_data(pg19_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyData:
    """200 KB of pg19 training bytes, 12 KB of validation: enough for tens of debug-sized steps."""
    store_dir = tmp_path_factory.mktemp("engines-seed-store")
    return TinyData(store_dir=store_dir, dataset_id=prepare_tiny(store_dir, pg19_dir),
                    source=f"local:{pg19_dir.resolve()}")




@pytest.fixture()
def fresh_store(tiny_data: TinyData, tmp_path: Path) -> Path:
    return copy_datasets(tiny_data, tmp_path / "store")




@pytest.fixture(scope="module")
def ray_local(s3_server) -> Iterator[object]:
    """A private Ray on 127.0.0.1 (2 CPUs) for this module; reuses one a test session already started.

    Its processes see the moto S3 server's credentials, as a cluster's nodes see theirs: Ray Train's
    controller writes its checkpoint records into an s3:// store too.
    """
    import ray

    saved = {k: os.environ.get(k) for k in s3_server.env}
    os.environ.update(s3_server.env)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    started = not ray.is_initialized()
    temp_dir = short_tmp("nsray")
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1", _temp_dir=temp_dir)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

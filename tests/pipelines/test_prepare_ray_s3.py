"""prepare on real Ray actors (loopback) and a real S3 API (moto server): same bytes as in-process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from nightshift.pipelines.errors import DataError
from nightshift.pipelines.prepare import PrepareConfig, prepare
from nightshift.pipelines.reader import list_datasets, open_dataset
from nightshift.pipelines.store import Store
from tests.helpers.servers import VENV_BIN, free_port
from tests.pipelines.helpers import shard_hashes

pytestmark = [pytest.mark.ray]


@pytest.fixture(scope="module")
def fineweb_config(shared_data) -> PrepareConfig:
    return PrepareConfig(source=f"local:{shared_data / 'fineweb' / 'fineweb_sample10BT_rows.parquet'}",
                         max_bytes=1_200_000, valid_bytes=150_000, shard_bytes=150_000)


def test_output_does_not_depend_on_the_number_of_actors(fineweb_config, tmp_path, ray_cluster):
    results = {n: prepare(fineweb_config, Store.open(str(tmp_path / f"a{n}")), actors=n, progress=False)
               for n in (0, 1, 2)}
    assert len({m.dataset_id for m in results.values()}) == 1
    assert results[2].written_shards == results[2].data["splits"]["train"]["totals"]["shards"] + 1 >= 8
    for split in ("train", "validation"):
        assert shard_hashes(results[0].data, split) == shard_hashes(results[1].data, split)
        assert shard_hashes(results[0].data, split) == shard_hashes(results[2].data, split)


@pytest.mark.s3
def test_prepare_on_ray_into_s3_then_read_back(fineweb_config, s3_env, ray_cluster):
    store = Store.open(s3_env.make_bucket("datasets-ray") + "/team")
    made = prepare(fineweb_config, store, actors=2, progress=False)
    assert made.uri.startswith("s3://datasets-ray/team/datasets/")
    assert store.exists("datasets", made.dataset_id, "manifest.json")
    assert [d["id"] for d in list_datasets(Store.open("s3://datasets-ray/team"))] == [made.dataset_id]
    ds = open_dataset(Store.open("s3://datasets-ray/team"), made.dataset_id)
    valid = list(ds.validation_docs())
    assert sum(d.n_bytes for d in valid) == 150_000
    assert sum(len(d.tokens) for d in valid) == made.data["splits"]["validation"]["totals"]["tokens"]
    batch = next(ds.train_reader(64, 4))
    assert batch.shape == (4, 65)
    again = prepare(fineweb_config, store, actors=2, progress=False)
    assert again.status == "exists" and again.written_shards == 0


@pytest.mark.s3
def test_altered_shard_on_s3_is_caught_at_read_time(fineweb_config, s3_env):
    store = Store.open(s3_env.make_bucket("datasets-bad"))
    made = prepare(fineweb_config, store, actors=0, progress=False)
    entry = made.data["splits"]["validation"]["shards"][0]
    raw = store.read_bytes("datasets", made.dataset_id, entry["path"])
    store.write_bytes(raw[:-10], "datasets", made.dataset_id, entry["path"])
    ds = open_dataset(store, made.dataset_id)
    with pytest.raises(DataError, match=rf"shard s3://datasets-bad/datasets/{made.dataset_id}/shards/validation/"
                                        rf"00000.arrow is truncated or altered.*sha256 {entry['sha256']}"):
        list(ds.validation_docs())


@pytest.mark.s3
def test_missing_bucket_is_a_store_that_is_not_writable(fineweb_config, s3_env):
    with pytest.raises(DataError, match=r"store 's3://no-such-bucket' is not writable"):
        prepare(fineweb_config, Store.open("s3://no-such-bucket"), actors=0, progress=False)


@pytest.mark.slow
def test_prepare_joins_an_existing_cluster_named_by_ray_address(fineweb_config, tmp_path):
    """`ray start --head` in its own temp dir (so no other local Ray can find it); RAY_ADDRESS points at it."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="nsray-", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen(
        [str(VENV_BIN / "ray"), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--node-ip-address=127.0.0.1", f"--temp-dir={temp}", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None, "ray start --head exited"
            time.sleep(0.5)
        cmd = [str(VENV_BIN / "nightshift"), "prepare", "--source", fineweb_config.source, "--max-bytes", "300KB",
               "--valid-bytes", "50KB", "--shard-bytes", "100KB", "--actors", "2", "--json",
               "--store", str(tmp_path / "store")]
        out = subprocess.run(cmd, env={**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert json.loads(out.stdout)["written_shards"] >= 4
        logs = list(Path(temp).glob("session_*/logs/python-core-driver-*"))
        assert logs, "the prepare driver never connected to the cluster named by RAY_ADDRESS"
    finally:
        head.terminate()
        head.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)

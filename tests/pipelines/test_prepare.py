"""prepare: manifest contents, dataset ids, no-op re-runs, resume after a kill, refusals."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from nightshift.pipelines.errors import DataError
from nightshift.pipelines.prepare import PrepareConfig, dataset_id, prepare
from nightshift.pipelines.store import Store
from nightshift.pipelines.tokenizers import load_tokenizer
from tests.helpers.paths import ROOT
from tests.pipelines.helpers import write_jsonl


def test_manifest_records_config_tokenizer_shards_and_totals(pg19_small):
    store, config, manifest = pg19_small
    data = store.read_json("datasets", manifest.dataset_id, "manifest.json")
    assert data == manifest.data and data["dataset_id"] == manifest.dataset_id
    assert data["config"]["max_bytes"] == 1_500_000 and data["config"]["source"] == config.source
    assert data["tokenizer"] == load_tokenizer("gpt2").identity() and data["token_dtype"] == "uint16"
    train = data["splits"]["train"]
    assert train["totals"]["bytes"] == 1_500_000 and train["totals"]["shards"] == len(train["shards"]) >= 3
    for split in ("train", "validation"):
        shards = data["splits"][split]["shards"]
        assert [s["path"] for s in shards] == [f"shards/{split}/{i:05d}.arrow" for i in range(len(shards))]
        for s in shards:
            raw = store.read_bytes("datasets", manifest.dataset_id, s["path"])
            assert hashlib.sha256(raw).hexdigest() == s["sha256"] and len(raw) == s["size"]
            table = pa.ipc.open_stream(raw).read_all()  # an Arrow IPC *stream*, one row per document
            assert table.column_names == ["doc_id", "tokens", "n_bytes"] and table.num_rows == s["docs"]
            assert sum(table.column("n_bytes").to_pylist()) == s["bytes"]
        assert data["splits"][split]["totals"]["tokens"] == sum(s["tokens"] for s in shards)


def test_rerunning_a_finished_prepare_is_a_noop(pg19_small):
    store, config, manifest = pg19_small
    path = store.path("datasets", manifest.dataset_id)
    before = {p: os.stat(os.path.join(d, p)).st_mtime_ns for d, _, fs in os.walk(path) for p in fs}
    start = time.perf_counter()
    again = prepare(config, store, actors=2, progress=False)  # would start Ray if it did any work
    assert time.perf_counter() - start < 5  # generous for a loaded box; it is ~0.1 s
    assert again.status == "exists" and again.data == manifest.data and again.written_shards == 0
    after = {p: os.stat(os.path.join(d, p)).st_mtime_ns for d, _, fs in os.walk(path) for p in fs}
    assert after == before


def test_dataset_id_changes_with_every_config_field_and_the_tokenizer(pg19_dir):
    base = PrepareConfig(source=f"local:{pg19_dir}", max_bytes=1_000_000)
    changed = {"source": "local:/work/shared/data/fineweb", "max_bytes": 2_000_000, "valid_bytes": 500_000,
               "tokenizer": "r50k_base", "text_field": "body", "id_field": "url", "config": "x",
               "revision": "main", "split_rule": "hash", "valid_permille": 10, "split_seed": 1, "valid_docs": 8,
               "shard_bytes": 1_000_000}
    assert set(changed) == {f.name for f in dataclasses.fields(PrepareConfig)}, "new field: pin it here"
    base_id = dataset_id(base)
    assert base_id.startswith("local-pg19-1mb-gpt2-") and len(base_id.rsplit("-", 1)[1]) >= 12
    ids = {dataset_id(dataclasses.replace(base, **{k: v})) for k, v in changed.items()}
    assert len(ids) == len(changed) and base_id not in ids
    # the same request spelled differently is the same dataset
    assert dataset_id(PrepareConfig(source=f"local:{pg19_dir}/../pg19", max_bytes=1_000_000)) == base_id
    # gpt2 and r50k_base share ranks: only the tokenizer name tells them apart, and it counts
    assert load_tokenizer("gpt2").identity()["ranks_sha256"] == load_tokenizer("r50k_base").identity()["ranks_sha256"]


def test_hub_defaults_are_part_of_the_id_the_same_way_when_spelled_out():
    default = dataset_id(PrepareConfig(source="fineweb"))
    assert default.startswith("fineweb-10mb-gpt2-")
    assert dataset_id(PrepareConfig(source="fineweb", config="sample-10BT")) == default
    assert dataset_id(PrepareConfig(source="fineweb", config="sample-100BT")) != default
    assert dataset_id(PrepareConfig(source="fineweb-edu")) != default


def test_changed_local_data_changes_the_id(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": "a"}])
    first = dataset_id(PrepareConfig(source=f"local:{path}"))
    write_jsonl(path, [{"text": "b"}])
    assert dataset_id(PrepareConfig(source=f"local:{path}")) != first


def test_existing_manifest_that_disagrees_with_the_config_is_refused(pg19_dir, tmp_path):
    store = Store.open(str(tmp_path))
    config = PrepareConfig(source=f"local:{pg19_dir}", max_bytes=200_000, valid_bytes=50_000)
    done = prepare(config, store, actors=0, progress=False)
    tampered = dict(done.data, config=dict(done.data["config"], shard_bytes=1))
    store.write_json(tampered, "datasets", done.dataset_id, "manifest.json")
    with pytest.raises(DataError, match=r"already exists with a different config.*refusing"):
        prepare(config, store, actors=0, progress=False)


def test_invalid_utf8_count_is_recorded_in_the_manifest(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_bytes(b"good text\n\nbad \xff byte\n\nmore \xc3( text\n")
    (data / "validation.txt").write_bytes(b"valid \xfe doc\n")
    m = prepare(PrepareConfig(source=f"local:{data}"), Store.open(str(tmp_path / "s")), actors=0, progress=False)
    assert m.data["split_rule"] == "source"
    assert m.data["stats"]["invalid_utf8_replacements"] == 3


def test_store_that_is_not_writable_fails_before_writing(pg19_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match=r"store .*file/store' is not writable"):
        prepare(PrepareConfig(source=f"local:{pg19_dir}", max_bytes=100_000), Store.open(str(blocker / "store")),
                actors=0, progress=False)


def test_bad_sizes_and_actor_counts_are_refused(pg19_dir):
    for kw in ({"max_bytes": 0}, {"max_bytes": -5}, {"valid_bytes": 0}, {"shard_bytes": True}):
        with pytest.raises(DataError, match=r"must be a positive number of bytes"):
            PrepareConfig(source=f"local:{pg19_dir}", **kw)
    with pytest.raises(DataError, match=r"actors must be >= 0"):
        prepare(PrepareConfig(source=f"local:{pg19_dir}"), Store.open("/tmp"), actors=-1)


def test_killed_prepare_resumes_redoing_only_unfinished_shards(shared_data, tmp_path):
    source = f"local:{shared_data / 'fineweb' / 'fineweb_sample10BT_rows.parquet'}"
    store_dir = tmp_path / "store"
    args = ["--source", source, "--max-bytes", "3MB", "--valid-bytes", "100KB",
            "--shard-bytes", "50KB", "--actors", "0", "--store", str(store_dir), "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "nightshift.orchestrator.cli", "prepare", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    ledger: list[Path] = []
    while time.time() < deadline and proc.poll() is None:
        ledger = list(store_dir.glob("datasets/*/ledger/*.json"))
        if len(ledger) >= 5:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (ds_dir,) = store_dir.glob("datasets/*")
    assert not (ds_dir / "manifest.json").exists(), "finished before it could be killed"
    finished = {p.name: p.stat().st_mtime_ns for p in ds_dir.glob("ledger/*.json")}
    assert len(finished) >= 5
    config = PrepareConfig(source=source, max_bytes=3_000_000, valid_bytes=100_000, shard_bytes=50_000)
    resumed = prepare(config, Store.open(str(store_dir)), actors=0, progress=False)
    total = sum(resumed.data["splits"][s]["totals"]["shards"] for s in ("train", "validation"))
    assert resumed.reused_shards == len(finished) and resumed.written_shards == total - len(finished)
    assert {p: (ds_dir / "ledger" / p).stat().st_mtime_ns for p in finished} == finished
    fresh = prepare(config, Store.open(str(tmp_path / "fresh")), actors=0, progress=False)
    for split in ("train", "validation"):
        assert ([s["sha256"] for s in resumed.data["splits"][split]["shards"]]
                == [s["sha256"] for s in fresh.data["splits"][split]["shards"]])
    assert json.loads((ds_dir / "manifest.json").read_text())["dataset_id"] == fresh.dataset_id

"""Out of space: one line with the path and the bytes, exit 2, nothing finished lost, the same command resumes.

Two ways to fill a disk: a real size-limited tmpfs (needs root; skipped otherwise)
and ENOSPC injected at the store's write layer (NIGHTSHIFT_STORE_FAULTS), which
raises exactly where the operating system would, so the code under test is the
real one either way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
from nightshift.orchestrator.runs.folders import find_run
from nightshift.orchestrator.tracking.spool import Spool
from nightshift.pipelines.prepare import PrepareConfig, prepare
from nightshift.pipelines.store import FAULTS_ENV, Store, StoreFullError
from tests.faults.helpers import (
    STEPS,
    TRAIN_FLAGS,
    Reference,
    run_config,
    same_weights,
    weights,
)
from tests.helpers.cli import nightshift


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A real filesystem of `size` bytes (tmpfs) at `path`; skips the test where mounting needs root."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root (the injected-ENOSPC tests cover the rest)")
    path.mkdir(parents=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Take all but `leave` bytes of the disk's free space."""
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    filler = disk / "filler.bin"
    with open(filler, "wb") as fh:
        os.posix_fallocate(fh.fileno(), 0, max(free - leave, 1))
    return filler


def _one_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("nightshift: error:") and "Traceback" not in proc.stderr, \
        proc.stderr[-3000:]
    return lines[0]


def _train(store: Path, dataset_id: str, env: dict[str, str] | None = None, check: bool = True):
    return nightshift("train", "--dataset", dataset_id, *TRAIN_FLAGS, "--store", str(store), "--tracking-uri", "none",
                      env=env, check=check)


def _latest_step(store: Path, run_id: str) -> int:
    s = Store.open(str(store))
    trail = CheckpointTrail(s, find_run(s, run_id).config.run_path)
    assert trail.load()["progress"]["step"] == trail.latest()["step"]  # the pointer's checkpoint loads
    return trail.latest()["step"]


def test_checkpoint_write_out_of_space_injected(store_copy: tuple[Path, str], reference: Reference,
                                                cli, monkeypatch: pytest.MonkeyPatch) -> None:
    store, dataset_id = store_copy
    run_id = run_config(dataset_id).run_id
    args = ("train", "--dataset", dataset_id, *TRAIN_FLAGS, "--store", str(store), "--tracking-uri", "none")
    monkeypatch.setenv(FAULTS_ENV, "enospc:runs/*/checkpoints/step_00000004/state.pt")
    full = cli(*args)
    assert full.code == 2 and len(full.err.strip().splitlines()) == 1, full.err
    line = full.err.strip()
    assert "no space left" in line and "step_00000004/state.pt" in line and "bytes" in line, line
    assert "run the same command again" in line
    assert not list(store.rglob("*.tmp-*"))  # no half-written temporary left behind
    assert _latest_step(store, run_id) == 2  # the previous checkpoint is intact

    monkeypatch.delenv(FAULTS_ENV)  # space freed: the same command completes
    done = cli(*args)
    assert done.code == 0 and json.loads(done.out)["step"] == STEPS
    assert same_weights(weights(store, run_id), reference.weights)


@pytest.mark.slow
def test_checkpoint_on_a_really_full_filesystem(store_copy: tuple[Path, str], reference: Reference,
                                               tmp_path: Path) -> None:
    src, dataset_id = store_copy
    run_id = run_config(dataset_id).run_id
    ckpt = reference.checkpoint_bytes
    with small_disk(tmp_path / "disk", f"{6 * ckpt + 2_000_000}") as disk:
        store = disk / "store"
        shutil.copytree(src, store)
        filler = fill(disk, leave=int(1.5 * ckpt))  # room for one checkpoint, not two
        line = _one_line(_train(store, dataset_id, check=False))
        assert "no space left" in line and "state.pt" in line and "bytes free" in line, line
        assert not list(store.rglob("*.tmp-*"))
        assert _latest_step(store, run_id) == 2

        filler.unlink()  # the user frees space and types the same command
        done = json.loads(_train(store, dataset_id).stdout)
        assert done["step"] == STEPS and same_weights(weights(store, run_id), reference.weights)


def _small_docs_source(root: Path, pg19_dir: Path) -> str:
    """A local source with its own train/validation split and 8 KB documents (so shards hold a few each)."""
    book = pq.read_table(pg19_dir / "train.parquet", columns=["text"]).column("text")[0].as_py()
    root.mkdir()
    for split, n in (("train", 30), ("validation", 3)):
        texts = [book[i * 8000:(i + 1) * 8000] for i in range(n)] if split == "train" else \
            [book[-(i + 1) * 4000:][:4000] for i in range(n)]
        pq.write_table(pa.table({"id": [f"{split}-{i}" for i in range(n)], "text": texts}),
                       root / f"{split}.parquet")
    return f"local:{root}"


def test_prepare_out_of_space_keeps_its_ledger_and_resumes(tmp_path: Path, pg19_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = PrepareConfig(source=_small_docs_source(tmp_path / "src", pg19_dir), max_bytes=120_000,
                           valid_bytes=10_000, tokenizer="bytes", shard_bytes=20_000)
    store = Store.open(str(tmp_path / "store"))
    monkeypatch.setenv(FAULTS_ENV, "enospc:datasets/*/shards/train/00003.arrow")
    with pytest.raises(StoreFullError) as info:
        prepare(config, store, actors=0, progress=False)
    assert "shards/train/00003.arrow" in str(info.value) and "bytes" in str(info.value)
    ds = next((tmp_path / "store" / "datasets").iterdir())
    kept = sorted(p.name for p in (ds / "ledger").iterdir())
    assert "train-00002.json" in kept and "train-00003.json" not in kept  # finished shards are on record

    monkeypatch.delenv(FAULTS_ENV)
    done = prepare(config, store, actors=0, progress=False)
    assert done.status == "prepared" and done.reused_shards >= 3
    clean = prepare(config, Store.open(str(tmp_path / "clean")), actors=0, progress=False)
    assert done.dataset_id == clean.dataset_id
    assert [s["sha256"] for s in done.data["splits"]["train"]["shards"]] == \
        [s["sha256"] for s in clean.data["splits"]["train"]["shards"]]


def test_spool_write_out_of_space_names_the_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(str(tmp_path / "store"))
    spool = Spool(store, "tracking-spool/run")
    spool.append({"kind": "batch", "metrics": []})
    monkeypatch.setenv(FAULTS_ENV, "enospc:tracking-spool/*")
    with pytest.raises(StoreFullError) as info:
        spool.append({"kind": "batch", "metrics": [["loss", 1.0, 0, 3]]})
    assert "tracking-spool/run/0000000002.json" in str(info.value) and "bytes" in str(info.value)
    assert spool.pending() == ["0000000001.json"]  # nothing half-written


def test_mlflow_artifacts_on_a_full_disk_are_kept_and_sent_later(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from nightshift.orchestrator.tracking import query
    from nightshift.orchestrator.tracking.mlflow_tracker import MlflowTracker
    from tests.helpers.tracking import FAST, wait_until

    with small_disk(tmp_path / "disk", "1m") as disk:
        store = Store.open(str(disk / "store"))
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        tracker = MlflowTracker(uri, spool_store=store, spool_prefix="spool", artifact_root=str(disk / "artifacts"),
                                **FAST)
        run_id = tracker.start("full/key", "full", "full-disk", {}, {"lr": 0.1})
        payload = tmp_path / "weights.bin"
        payload.write_bytes(os.urandom(300_000))
        filler = fill(disk, leave=50_000)
        with caplog.at_level(logging.WARNING):
            tracker.log_artifact(str(payload))  # never raises into training
            tracker.log_metrics({"loss": 1.0}, 1)
            tracker.flush()
        warned = [r.getMessage() for r in caplog.records if "no space left" in r.getMessage()]
        assert warned and "bytes" in warned[0] and str(disk) in warned[0], [r.getMessage() for r in caplog.records]

        filler.unlink()
        wait_until(lambda: "weights.bin" in query.list_artifacts(uri, run_id), timeout=60, what="artifact upload")
        tracker.finish()
        assert [p["step"] for p in query.metric_history(uri, run_id, "loss")] == [1]


def test_report_into_a_full_folder_is_one_line(reference: Reference, tmp_path: Path, cli) -> None:
    """Out of space outside the store (a report folder): the CLI's catch-all still gives one line."""
    store = tmp_path / "store"
    shutil.copytree(reference.store, store)
    run_path = next(store.glob(f"runs/*/*/{reference.run_id}")).relative_to(store).as_posix()
    sweep_id = "faults-0123456789abcdef"
    Store.open(str(store)).write_json({"sweep_id": sweep_id, "datasets": [], "spec": {}, "cells": [
        {"run_path": run_path, "size_bytes": 200_000, "state": "finished"}]}, "sweeps", sweep_id, "sweep.json")
    with small_disk(tmp_path / "disk", "64k") as disk:
        fill(disk, leave=0)
        report = cli("report", "--sweep", sweep_id, "--out", str(disk / "report"), "--no-log", "--store", str(store),
                     "--tracking-uri", "none")
        assert report.code == 2 and len(report.err.strip().splitlines()) == 1, report.err
        line = report.err.strip()
        assert line.startswith("nightshift: error: no space left") and str(disk / "report") in line, line
        assert not list((disk / "report").glob("*.tmp-*"))

"""Every kind of file the store holds, damaged four ways: one clear error naming the file and the fix.

The damage is done to real files written by the real code (prepare, train, fork,
the tracking spool), and each is read back through the code that reads it in
normal use. A few cases go through the CLI to show the user's view: one line,
exit 2, no traceback.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from nightshift.orchestrator.checkpointing.trail import POINTER, CheckpointTrail
from nightshift.orchestrator.runs.folders import RESULT, RUN_CONFIG, STATUS, find_run
from nightshift.orchestrator.runs.fork import LINEAGE, fork_run, lineage_of
from nightshift.orchestrator.sweeps.record import read_sweep
from nightshift.orchestrator.tracking.jsonl import (
    HISTORY_SPEC,
    JsonlTracker,
    read_history,
)
from nightshift.orchestrator.tracking.spool import META_SPEC, RECORD_SPEC, Spool
from nightshift.orchestrator.training.trainer import Trainer
from nightshift.pipelines.prepare import LEDGER, PrepareConfig, prepare
from nightshift.pipelines.reader import INTENT, MANIFEST, open_dataset
from nightshift.pipelines.store import FileSpec, Store, StoreFileError
from tests.faults.helpers import run_config
from tests.helpers.cli import nightshift

SWEEP_ID = "sweep-0123456789abcdef"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, prepared_store: tuple[Path, str], pg19_dir: Path) -> dict:
    """One store holding every kind of file: dataset, ledger, a trained run, a fork, a spool, a sweep record."""
    src, dataset_id = prepared_store
    root = tmp_path_factory.mktemp("store-files")
    shutil.copytree(src, root / "store")
    store = Store.open(str(root / "store"))
    config = run_config(dataset_id, steps=2, checkpoint_every="1")
    history = JsonlTracker(store, "/".join(config.run_path) + "/tracking")
    Trainer(config, store, progress_bar=False, tracker=history).run()
    child, _ = fork_run(store, config.run_id, 1, {"lr": "5e-4"})
    spool = Spool(store, "tracking-spool/x")
    spool.write_meta({"run_key": config.run_id, "experiment": "e", "run_id": ""})
    spool.append({"kind": "batch", "metrics": [["loss", 1.0, 0, 1]]})
    store.write_json({"format": "nightshift.sweep/1", "sweep_id": SWEEP_ID, "cells": [], "datasets": []},
                     "sweeps", SWEEP_ID, "sweep.json")
    return {"root": root, "dataset": dataset_id, "config": config, "child": child, "pg19": pg19_dir}


def _kinds(w: dict) -> dict[str, tuple[str, FileSpec, Callable[[Store], object]]]:
    """kind -> (path under the store, its spec, the reader users hit)."""
    ds, cfg, child = f"datasets/{w['dataset']}", w["config"], w["child"]
    run, kid = "/".join(cfg.run_path), "/".join(child.run_path)
    pg = PrepareConfig(source=f"local:{w['pg19']}", max_bytes=200_000, valid_bytes=8_000, tokenizer="bytes")
    return {
        "manifest": (f"{ds}/manifest.json", MANIFEST, lambda s: open_dataset(s, w["dataset"])),
        "manifest (prepare)": (f"{ds}/manifest.json", MANIFEST, lambda s: prepare(pg, s, actors=0, progress=False)),
        "prepare record": (f"{ds}/prepare.json", INTENT, lambda s: _without_manifest(s, ds, pg)),
        "ledger": (f"{ds}/ledger/train-00000.json", LEDGER, lambda s: _without_manifest(s, ds, pg)),
        "run config": (f"{run}/config.json", RUN_CONFIG, lambda s: find_run(s, cfg.run_id)),
        "run status": (f"{run}/status.json", STATUS, lambda s: Trainer(cfg, s, progress_bar=False).run()),
        "run result": (f"{run}/result.json", RESULT, lambda s: Trainer(cfg, s, progress_bar=False).run()),
        "lineage": (f"{kid}/lineage.json", LINEAGE, lambda s: lineage_of(s, child)),
        "checkpoint meta": (f"{run}/checkpoints/step_00000001/meta.json", POINTER,
                            lambda s: CheckpointTrail(s, cfg.run_path).load(1)),
        "sweep record": (f"sweeps/{SWEEP_ID}/sweep.json", None, lambda s: read_sweep(s, SWEEP_ID)),
        "spool record": ("tracking-spool/x/0000000001.json", RECORD_SPEC,
                         lambda s: Spool(s, "tracking-spool/x").read("0000000001.json")),
        "spool header": ("tracking-spool/x/run.json", META_SPEC, lambda s: Spool(s, "tracking-spool/x").read_meta()),
        "tracking history": (f"{run}/tracking/history-00000000.jsonl", HISTORY_SPEC,
                             lambda s: read_history(s, f"{run}/tracking")),
    }


def _without_manifest(store: Store, ds: str, pg: PrepareConfig) -> None:
    """A killed prepare's state: ledger and intent, no manifest; re-running it reads both."""
    store.remove(ds, "manifest.json")
    prepare(pg, store, actors=0, progress=False)


def _damage(raw: bytes, how: str, spec: FileSpec | None, jsonl: bool) -> bytes:
    if how == "truncated":
        return raw[: len(raw) // 2]
    if how == "not json":
        return b"\x00\xffgarbage{"
    value = json.loads(raw.splitlines()[0] if jsonl else raw)  # JSON lines: one damaged record
    path = next(iter(spec.fields)) if spec is not None else "cells"
    *parents, last = path.replace("[]", ".0").split(".")
    target = value
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if how == "missing key":
        del target[last]
    else:  # wrong type: a list where a scalar or object belongs, a string where a list does
        target[last] = "oops" if isinstance(target[last], list) else [1, 2]
    return json.dumps(value).encode("utf-8")


KINDS = ["manifest", "manifest (prepare)", "prepare record", "ledger", "run config", "run status", "run result",
         "lineage", "checkpoint meta", "sweep record", "spool record", "spool header", "tracking history"]
DAMAGE = ["truncated", "not json", "missing key", "wrong type"]


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("kind", KINDS)
def test_damaged_store_file_is_one_clear_error(world: dict, tmp_path: Path, kind: str, how: str) -> None:
    shutil.copytree(world["root"] / "store", tmp_path / "store")
    store = Store.open(str(tmp_path / "store"))
    rel, spec, read = _kinds(world)[kind]
    target = tmp_path / "store" / rel
    target.write_bytes(_damage(target.read_bytes(), how, spec, jsonl=rel.endswith(".jsonl")))
    with pytest.raises(StoreFileError) as info:
        read(store)
    message = str(info.value)
    assert "\n" not in message and "is damaged" in message, message
    assert target.name in message, message
    what = (spec.what if spec is not None else "sweep record")
    assert message.startswith(what) and ("delete" in message or "restore" in message or "move" in message
                                         or "falls back" in message), message


def test_damaged_files_through_the_cli(world: dict, tmp_path: Path) -> None:
    """What a user sees: one line, exit 2, no traceback; the file and the fix are named."""
    shutil.copytree(world["root"] / "store", tmp_path / "store")
    s = str(tmp_path / "store")
    manifest = tmp_path / "store" / "datasets" / world["dataset"] / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:100])
    proc = nightshift("train", "--dataset", world["dataset"], "--model", "transformer:debug", "--steps", "2",
                      "--store", s, "--tracking-uri", "none", "--no-progress", check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "manifest.json is damaged" in lines[0] and "nightshift prepare" in lines[0]

    config = tmp_path / "store" / "/".join(world["config"].run_path) / "config.json"
    config.write_text('{"dataset_id": 7}')
    proc = nightshift("eval", world["config"].run_id, "--store", s, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "config.json is damaged" in lines[0] and "'dataset_id'" in lines[0] and "delete the run" in lines[0]


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"step": "seven"}', b"[1, 2]"])
def test_a_damaged_ray_checkpoint_pointer_is_logged_and_ignored(tmp_path: Path, content: bytes,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """The pointer in a Ray checkpoint is a record; the store trail decides the resume. Damage: a warning, None."""
    from ray.train import Checkpoint

    from nightshift.orchestrator.backends.ray_backend import POINTER_FILE, read_pointer

    (tmp_path / POINTER_FILE).write_bytes(content)
    with caplog.at_level("WARNING"):
        assert read_pointer(Checkpoint.from_directory(str(tmp_path))) is None
    assert "Ray checkpoint pointer" in caplog.text and POINTER_FILE in caplog.text
    (tmp_path / POINTER_FILE).write_text(json.dumps({"step": 7, "path": "x"}))
    assert read_pointer(Checkpoint.from_directory(str(tmp_path)))["step"] == 7

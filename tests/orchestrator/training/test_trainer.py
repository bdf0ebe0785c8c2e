"""The trainer loop end to end on real pg19 bytes: learning, exact resume after kill -9, signals, rollback, fork."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte
from nightshift.orchestrator.runs.config import build_run_config
from nightshift.orchestrator.runs.folders import find_run
from nightshift.orchestrator.runs.fork import fork_run
from nightshift.orchestrator.runs.vocab import vocab_of
from nightshift.orchestrator.training.trainer import Trainer
from nightshift.pipelines.reader import open_dataset
from nightshift.pipelines.store import Store
from tests.helpers.cli import nightshift
from tests.helpers.data import prepare_pg19
from tests.helpers.paths import ROOT

FAST = {"eval_every": "0", "log_every": "5", "sample_tokens": "8"}


def test_baseline_learns_on_pg19(store_dir: Path, pg19_bytes: str) -> None:
    store = Store.open(str(store_dir))
    config = build_run_config(pg19_bytes, "transformer:debug",
                              {**FAST, "lr": "3e-3", "warmup_steps": "10", "batch_size": "16"}, steps=150)
    dataset = open_dataset(store, pg19_bytes)
    torch.manual_seed(config.train.seed)
    untrained = bits_per_byte(config.model.config.build(vocab_of(dataset.tokenizer())), dataset.validation_docs())
    result = Trainer(config, store, progress_bar=False).run()
    assert untrained.bits_per_byte > 7.5  # ~log2(257): an untrained byte model knows nothing
    assert result["val_bpb"] < 0.5 * untrained.bits_per_byte
    assert result["val_bytes"] == untrained.n_bytes  # same bytes scored before and after
    assert result["step"] == 150 and result["stop_reason"] == "finished"
    run = find_run(store, config.run_id)
    assert run.status()["state"] == "finished"
    assert store.exists(*config.run_path, "samples", "step_00000150.txt")
    # re-running a finished run is a no-op that returns the same result
    t0 = time.perf_counter()
    assert Trainer(config, store, progress_bar=False).run() == result
    assert time.perf_counter() - t0 < 5


def _final_weights(store_dir: Path, run_id: str) -> dict[str, torch.Tensor]:
    store = Store.open(str(store_dir))
    run = find_run(store, run_id)
    return CheckpointTrail(store, run.config.run_path).load()["model"]


@pytest.mark.slow
def test_resume_after_kill_9_is_bitwise_identical(tmp_path: Path, pg19_dir: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    ids = {prepare_pg19(d, pg19_dir) for d in (straight, killed)}
    assert len(ids) == 1  # the same data and config give the same dataset id in any store
    dataset_id = ids.pop()
    args = ["train", "--dataset", dataset_id, "--model", "transformer:debug", "--steps", "30",
            "--set", "checkpoint_every=15", "--set", "eval_every=0", "--set", "sample_tokens=4",
            "--tracking-uri", "none", "--no-progress", "--json"]
    done = json.loads(nightshift(*args, "--store", str(straight)).stdout)

    env = {**os.environ, "NIGHTSHIFT_FAULTS": "pause@15:120"}
    proc = subprocess.Popen([sys.executable, "-m", "nightshift.orchestrator.cli", *args, "--store", str(killed)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    latest = None
    deadline = time.time() + 300
    while time.time() < deadline:
        pointers = list(killed.glob("runs/*/*/*/checkpoints/latest.json"))
        if pointers and json.loads(pointers[0].read_text())["step"] == 15:
            latest = pointers[0]
            break
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    assert latest is not None, "no checkpoint at step 15"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = json.loads(nightshift("train", "--resume", done["run_id"], "--store", str(killed),
                                    "--tracking-uri", "none", "--no-progress", "--json").stdout)
    assert resumed["step"] == 30 and resumed["run_id"] == done["run_id"]
    a, b = _final_weights(straight, done["run_id"]), _final_weights(killed, done["run_id"])
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    assert resumed["val_bpb"] == done["val_bpb"]


@pytest.mark.slow
def test_sigterm_checkpoints_then_exits_and_resume_finishes(store_dir: Path, pg19_bytes: str) -> None:
    args = ["train", "--dataset", pg19_bytes, "--model", "transformer:debug", "--steps", "20",
            "--set", "checkpoint_every=0", "--set", "eval_every=0", "--store", str(store_dir),
            "--tracking-uri", "none", "--no-progress", "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "nightshift.orchestrator.cli", *args], cwd=ROOT,
                            env={**os.environ, "NIGHTSHIFT_FAULTS": "pause@5:120"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(store_dir.glob("runs/*/*/*/status.json")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # training has started (it holds still after step 5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]  # 128 + SIGTERM, after the checkpoint: a scheduler sees the signal
    result = json.loads(out)
    assert result["stop_reason"] == "interrupted" and result["stop_signal"] == "SIGTERM" and 1 <= result["step"] < 20
    store = Store.open(str(store_dir))
    run = find_run(store, result["run_id"])
    assert run.status()["state"] == "interrupted"
    assert CheckpointTrail(store, run.config.run_path).latest()["step"] == result["step"]
    final = json.loads(nightshift("train", "--resume", result["run_id"], "--store", str(store_dir),
                                  "--tracking-uri", "none", "--no-progress", "--json").stdout)
    assert final["step"] == 20 and final["stop_reason"] == "finished"


def test_nan_and_spike_roll_back_and_the_run_completes(store_dir: Path, pg19_bytes: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTSHIFT_FAULTS", "nan@12,spike@27:1000")
    store = Store.open(str(store_dir))
    config = build_run_config(pg19_bytes, "transformer:debug", {**FAST, "checkpoint_every": "5"}, steps=40)
    result = Trainer(config, store, progress_bar=False).run()
    assert result["step"] == 40 and result["rollbacks"] == 2
    events = sorted(p.name for p in store_dir.glob("runs/*/*/*/events/*.json"))
    assert events == ["rollback_00000012.json", "rollback_00000027.json"]
    detail = json.loads(next(store_dir.glob("runs/*/*/*/events/rollback_00000027.json")).read_text())
    assert "spike" in detail["reason"] and detail["restored_step"] == 25
    nan = json.loads(next(store_dir.glob("runs/*/*/*/events/rollback_00000012.json")).read_text())
    assert "non-finite" in nan["reason"] and nan["restored_step"] == 10


def test_repeated_divergence_stops_with_a_clear_message(store_dir: Path, pg19_bytes: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTSHIFT_FAULTS", "nan@6,nan@8,nan@9")
    store = Store.open(str(store_dir))
    config = build_run_config(pg19_bytes, "transformer:debug", {**FAST, "checkpoint_every": "5",
                                                                "max_rollbacks": "2"}, steps=20)
    with pytest.raises(ValueError, match="training diverged: non-finite loss at step 9 after 2 rollbacks"):
        Trainer(config, store, progress_bar=False).run()


def test_fork_records_lineage_and_leaves_the_parent_alone(store_dir: Path, pg19_bytes: str) -> None:
    store = Store.open(str(store_dir))
    parent = build_run_config(pg19_bytes, "transformer:debug", {**FAST, "checkpoint_every": "10"}, steps=20)
    Trainer(parent, store, progress_bar=False).run()
    parent_latest = CheckpointTrail(store, parent.run_path).latest()
    child, lineage = fork_run(store, parent.run_id, 10, {"lr": "1e-4"}, steps=30)
    assert child.run_id != parent.run_id and child.train.lr == 1e-4
    assert lineage["parent_run_id"] == parent.run_id and lineage["parent_step"] == 10
    result = Trainer(child, store, progress_bar=False).run()
    assert result["step"] == 30
    assert CheckpointTrail(store, parent.run_path).latest() == parent_latest
    trail = CheckpointTrail(store, child.run_path).trail()
    assert trail[0]["step"] == 10 and trail[0]["forked_from"] == parent.run_id


def test_eval_and_sample_commands_read_a_finished_run(store_dir: Path, pg19_bytes: str) -> None:
    store = Store.open(str(store_dir))
    config = build_run_config(pg19_bytes, "transformer:debug", FAST, steps=10)
    result = Trainer(config, store, progress_bar=False).run()
    ev = json.loads(nightshift("eval", config.run_id, "--store", str(store_dir), "--ablate", "--json").stdout)
    assert ev["val_bpb"] == pytest.approx(result["val_bpb"], rel=1e-6)
    assert ev["ablations"] == {}  # the transformer declares no ablatable part
    assert set(ev["references"]) == {"xz", "zstd", "ppmd"} and "adaptive" in ev["references_note"]
    assert store.exists("datasets", pg19_bytes, "references.json")  # cached beside the dataset
    sample = json.loads(nightshift("sample", config.run_id, "--prompt", "The ship", "--tokens", "12",
                                   "--store", str(store_dir), "--json").stdout)
    assert sample["text"].startswith("The ship") and sample["prompt"] == "The ship"
    assert sample["text"] == "The ship" + sample["continuation"]
    plain = nightshift("sample", config.run_id, "--prompt", "The ship", "--tokens", "12", "--store", str(store_dir))
    assert plain.stdout == sample["text"] + "\n"  # the prompt once, then its continuation (not "The shipThe ship")


@pytest.mark.parametrize("extra,needle", [
    (["--dataset", "nope-0123456789abcdef", "--model", "transformer:debug"], "no dataset"),
    (["--dataset", "../../etc-0123456789abcdef", "--model", "transformer:debug"], "invalid dataset id"),
    (["--model", "transformer:debug", "--steps", "0", "--dataset", "x-0123456789abcdef"], "--steps 0"),
    (["--model", "transformer:debug", "--set", "nlayer=2", "--dataset", "x-0123456789abcdef"], "did you mean n_layer"),
    (["--model", "transformer:debug", "--set", "seq_len=abc", "--dataset", "x-0123456789abcdef"],
     "expected an integer"),
    (["--model", "cnn", "--dataset", "x-0123456789abcdef"], "unknown model family 'cnn'"),
    (["--resume", "transformer-debug-s0-0123456789abcdef"], "unknown run"),
])
def test_bad_train_input_is_one_line_and_exit_2(store_dir: Path, extra: list[str], needle: str) -> None:
    proc = nightshift("train", *extra, "--store", str(store_dir), "--tracking-uri", "none", check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr
    assert not list(store_dir.glob("runs/*"))  # nothing half-written


def test_resume_with_a_changed_config_is_refused_naming_the_difference(store_dir: Path, pg19_bytes: str) -> None:
    store = Store.open(str(store_dir))
    config = build_run_config(pg19_bytes, "transformer:debug", FAST, steps=5)
    Trainer(config, store, progress_bar=False).run()
    proc = nightshift("train", "--resume", config.run_id, "--set", "lr=0.5", "--store", str(store_dir),
                      "--tracking-uri", "none", check=False)
    assert proc.returncode == 2
    assert "lr 0.001 -> 0.5" in proc.stderr and "nightshift fork" in proc.stderr

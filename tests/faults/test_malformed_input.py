"""One suite of malformed inputs across the CLI: each gets one clear line, exit 2, no traceback, nothing written."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path

import pytest

from nightshift.orchestrator.runs.config import build_run_config
from nightshift.orchestrator.training.trainer import Trainer
from nightshift.pipelines.store import Store
from tests.helpers.cli import nightshift
from tests.helpers.data import prepare_pg19
from tests.helpers.paths import SHARED_DATA

BAD_ID = "transformer-debug-s0-0123456789abcdef"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pg19_dir: Path) -> dict:
    """A store with a prepared dataset and a trained run, plus odd files to feed the CLI."""
    root = tmp_path_factory.mktemp("malformed")
    store_dir = root / "store"
    dataset_id = prepare_pg19(store_dir, pg19_dir)
    config = build_run_config(dataset_id, "transformer:debug", {"eval_every": "0", "sample_tokens": "4"}, steps=4)
    Trainer(config, Store.open(str(store_dir)), progress_bar=False).run()
    (root / "empty.txt").write_text("")
    (root / "blank.txt").write_text("   \n\n\t  \n")
    (root / "notes.jsonl").write_text('{"body": "text in another field"}\n')
    return {"root": root, "store": store_dir, "dataset": dataset_id, "run": config.run_id,
            "run_dir": next(store_dir.glob(f"runs/*/*/{config.run_id}"))}


def _case(world: dict, name: str) -> tuple[list[str], str]:
    r, s, d, run = world["root"], str(world["store"]), world["dataset"], world["run"]
    pg = "local:" + str(SHARED_DATA / "pg19")
    train = ["train", "--store", s, "--tracking-uri", "none", "--no-progress"]
    cases = {
        "unknown source": (["prepare", "--source", "wikipedia", "--store", s], "unknown source"),
        "missing local path": (["prepare", "--source", f"local:{r}/nope", "--store", s], "does not exist"),
        "zero max-bytes": (["prepare", "--source", pg, "--max-bytes", "0", "--store", s], "must be > 0"),
        "unparsable max-bytes": (["prepare", "--source", pg, "--max-bytes", "10XB", "--store", s], "not a size"),
        "negative valid-bytes": (["prepare", "--source", pg, "--valid-bytes", "-5", "--store", s], "valid-bytes"),
        "unknown tokenizer": (["prepare", "--source", pg, "--tokenizer", "sentencepiece", "--store", s],
                              "unknown tokenizer"),
        "missing text field": (["prepare", "--source", pg, "--text-field", "body", "--store", s], "body"),
        "empty corpus": (["prepare", "--source", f"local:{r}/empty.txt", "--store", s], "empty"),
        "whitespace corpus": (["prepare", "--source", f"local:{r}/blank.txt", "--store", s], "empty"),
        "jsonl without text": (["prepare", "--source", f"local:{r}/notes.jsonl", "--store", s], "text"),
        "store not writable": (["prepare", "--source", pg, "--store", "/proc/nightshift-store"], "not writable"),
        "path traversal id": (train + ["--dataset", "../../etc-0123456789abcdef", "--model", "transformer:debug"],
                              "invalid dataset id"),
        "unknown dataset": (train + ["--dataset", "nope-0123456789abcdef", "--model", "transformer:debug"],
                            "no dataset"),
        "zero steps": (train + ["--dataset", d, "--model", "transformer:debug", "--steps", "0"], "--steps 0"),
        "unknown set key": (train + ["--dataset", d, "--model", "transformer:debug", "--set", "lrate=1"],
                            "no such model or trainer field"),
        "set wrong type": (train + ["--dataset", d, "--model", "transformer:debug", "--set", "lr=fast"],
                           "expected a number"),
        "set without equals": (train + ["--dataset", d, "--model", "transformer:debug", "--set", "lr"],
                               "expected key=value"),
        "bad accumulation": (train + ["--dataset", d, "--model", "transformer:debug", "--set", "batch_size=10",
                                      "--set", "grad_accum=3"], "divisible"),
        "unknown family": (train + ["--dataset", d, "--model", "rwkv"], "unknown model family"),
        "unknown flavor": (train + ["--dataset", d, "--model", "transformer:xl"], "unknown flavor"),
        "bad model shape": (train + ["--dataset", d, "--model", "transformer:debug", "--set", "n_head=3"],
                            "not divisible"),
        "unknown run": (train + ["--resume", BAD_ID], "unknown run"),
        "resume with changes": (train + ["--resume", run, "--set", "lr=0.5"], "nightshift fork"),
        "sample zero tokens": (["sample", run, "--tokens", "0", "--store", s], "--tokens 0"),
        "sample zero temperature": (["sample", run, "--temperature", "0", "--store", s], "--temperature 0"),
        "fork with no change": (["fork", run, "--store", s, "--tracking-uri", "none"], "changes nothing"),
        "fork at a missing step": (["fork", run, "--step", "3", "--set", "lr=1e-4", "--steps", "8",
                                    "--store", s, "--tracking-uri", "none"], "no checkpoint at step 3"),
        "eval unknown run": (["eval", BAD_ID, "--store", s], "unknown run"),
        "bad store url": (["prepare", "--source", pg, "--store", "nosuchproto://bucket/x"], "store"),
    }
    return cases[name]


NAMES = ["unknown source", "missing local path", "zero max-bytes", "unparsable max-bytes", "negative valid-bytes",
         "unknown tokenizer", "missing text field", "empty corpus", "whitespace corpus", "jsonl without text",
         "store not writable", "path traversal id", "unknown dataset", "zero steps", "unknown set key",
         "set wrong type", "set without equals", "bad accumulation", "unknown family", "unknown flavor",
         "bad model shape", "unknown run", "resume with changes", "sample zero tokens", "sample zero temperature",
         "fork with no change", "fork at a missing step", "eval unknown run", "bad store url"]


def _listing(store: Path) -> set[str]:
    return {str(p.relative_to(store)) for p in store.rglob("*") if "tracking" not in p.parts}


@pytest.mark.parametrize("name", NAMES)
def test_malformed_input(world: dict, name: str) -> None:
    args, needle = _case(world, name)
    before = _listing(world["store"])
    proc = nightshift(*args, check=False, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("nightshift: error:"), proc.stderr[-2000:]
    assert needle in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert _listing(world["store"]) == before  # nothing half-written


def test_debug_flag_shows_the_traceback(world: dict) -> None:
    proc = nightshift("--debug", "eval", BAD_ID, "--store", str(world["store"]), check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_corrupt_shard_names_the_shard_and_its_sha(world: dict, tmp_path: Path) -> None:
    store = tmp_path / "copy"
    shutil.copytree(world["store"], store)
    shard = next(store.glob("datasets/*/shards/validation/*.arrow"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # truncated
    proc = nightshift("eval", world["run"], "--store", str(store), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert shard.name in proc.stderr and "sha256" in proc.stderr


def test_altered_checkpoint_is_refused(world: dict, tmp_path: Path) -> None:
    store = tmp_path / "copy"
    shutil.copytree(world["store"], store)
    state = next(store.glob("runs/*/*/*/checkpoints/step_*/state.pt"))
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF
    state.write_bytes(bytes(data))
    proc = nightshift("eval", world["run"], "--store", str(store), check=False)
    assert proc.returncode == 2 and "is corrupt" in proc.stderr and "Traceback" not in proc.stderr


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_checkpoint_with_code_is_refused_even_with_a_matching_hash(world: dict, tmp_path: Path) -> None:
    import hashlib

    store = tmp_path / "copy"
    shutil.copytree(world["store"], store)
    ckpt_dir = sorted(store.glob("runs/*/*/*/checkpoints/step_*"))[-1]
    buf = io.BytesIO()
    pickle.dump({"model": _Exploit()}, buf)
    payload = buf.getvalue()
    (ckpt_dir / "state.pt").write_bytes(payload)
    for meta in (ckpt_dir / "meta.json", ckpt_dir.parent / "latest.json"):
        info = json.loads(meta.read_text())
        info["sha256"] = hashlib.sha256(payload).hexdigest()
        meta.write_text(json.dumps(info))
    proc = nightshift("eval", world["run"], "--store", str(store), check=False)
    assert proc.returncode == 2 and "cannot be loaded safely" in proc.stderr
    assert "pwned" not in proc.stdout

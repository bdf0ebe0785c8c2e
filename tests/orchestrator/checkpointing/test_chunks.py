"""Incremental checkpoints: content-addressed chunks of large tensors (orchestrator/checkpointing/chunks.py).

Real holographic memories, saved through the real CheckpointTrail to a local
folder and to a real S3 API (moto): restores are bitwise, a save after new
episodes writes only the changed tail, chunks no kept checkpoint names are
collected, and a kill -9 in the middle of a write leaves the previous
checkpoint loadable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nightshift.models.holographic import Config
from nightshift.models.protocol import Vocab
from nightshift.orchestrator.checkpointing.chunks import REFS_FILE, ChunkStore
from nightshift.orchestrator.checkpointing.trail import CheckpointTrail, step_dir
from nightshift.orchestrator.errors import UserError
from nightshift.pipelines.store import Store
from tests.helpers.paths import ROOT

CHUNK = 4096  # small chunks and threshold so a test-sized memory spans many chunks
CFG = Config(context_size=4, max_attractors=200_000, episodic_buffer_size=256, holdout_every=8, holdout_size=256,
             rem_cycles=1, rem_pairs=8, knn_k=8, train_seq_multiple=16)


def small_trail(url: str, run: str = "run") -> CheckpointTrail:
    trail = CheckpointTrail(Store.open(url), ("runs", run))
    trail.chunks = ChunkStore(trail.store, trail.chunks.folder, chunk_bytes=CHUNK, min_tensor_bytes=CHUNK)
    return trail


def rows(texts: list[str], n: int, offset: int = 0) -> torch.Tensor:
    """n rows of (train_seq_len + 1) bytes of pg19 text, starting `offset` rows in."""
    width = CFG.train_seq_len + 1
    data = "".join(texts).encode()[offset * width : (offset + n) * width]
    return torch.tensor(list(data)).view(n, width)


def memory_model(texts: list[str], n_rows: int, offset: int = 0):
    model = CFG.build(Vocab.bytes_vocab())
    for s in range(offset, offset + n_rows, 16):
        model.observe(rows(texts, min(16, offset + n_rows - s), s))
    return model


def flat(obj, prefix: str = "") -> dict:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out |= flat(v, f"{prefix}{k}/")
        return out
    if isinstance(obj, (list, tuple)):
        out = {}
        for i, v in enumerate(obj):
            out |= flat(v, f"{prefix}{i}/")
        return out
    return {prefix: obj}


def assert_bitwise(a: dict, b: dict) -> None:
    fa, fb = flat(a), flat(b)
    assert fa.keys() == fb.keys()
    for key, va in fa.items():
        vb = fb[key]
        if isinstance(va, torch.Tensor):
            assert va.dtype == vb.dtype and va.shape == vb.shape, key
            raw_a, raw_b = (v.view(torch.uint8) if v.numel() else v for v in (va, vb))
            assert torch.equal(raw_a, raw_b), key
        else:
            assert va == vb, key


def chunk_files(root: Path) -> set[str]:
    folder = root / "runs" / "run" / "checkpoints" / "chunks"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def test_round_trip_is_bitwise_and_a_save_writes_only_the_new_tail(tmp_path: Path, pg19_texts) -> None:
    texts = pg19_texts["train"]
    model = memory_model(texts, 64)
    trail = small_trail(str(tmp_path))
    state1 = {"model": model.state_dict(), "step": 1, "note": ("kept", 3)}
    info1 = trail.save(state1, 1, None)
    assert info1["chunked_tensors"] >= 3 and info1["new_chunks"] == info1["chunks"] > 20
    assert_bitwise(trail.load(1), state1)

    for s in range(64, 72, 4):  # more episodes: the store grows by appending
        model.observe(rows(texts, 4, s))
    state2 = {"model": model.state_dict(), "step": 2, "note": ("kept", 3)}
    info2 = trail.save(state2, 2, 1)
    assert_bitwise(trail.load(2), state2)
    assert_bitwise(trail.load(1), state1)  # the older checkpoint still restores exactly
    # only the tails of the grown columns (and the small tensors that changed) are new
    assert 0 < info2["new_chunk_bytes"] < 0.25 * info2["chunk_bytes"], info2
    assert info2["chunk_bytes"] > info1["chunk_bytes"]

    restored = CFG.build(Vocab.bytes_vocab())
    restored.load_state_dict(trail.load(2)["model"])
    probe = rows(texts, 2, 200)[:, :40]
    assert torch.equal(restored.score(probe), model.score(probe))


def test_chunks_no_kept_checkpoint_needs_are_collected(tmp_path: Path, pg19_texts) -> None:
    texts = pg19_texts["train"]
    trail = small_trail(str(tmp_path))
    states = {}
    for step, n in ((1, 32), (2, 48)):
        states[step] = {"model": memory_model(texts, n).state_dict()}
        trail.save(states[step], step, step - 1 or None)
    first = set(json.loads((tmp_path / "runs/run/checkpoints" / step_dir(1) / REFS_FILE).read_text())["chunks"])
    second = set(json.loads((tmp_path / "runs/run/checkpoints" / step_dir(2) / REFS_FILE).read_text())["chunks"])
    assert first - second and chunk_files(tmp_path) == first | second

    trail.store.remove(*trail._p(step_dir(1)), recursive=True)  # what a keep policy or a person does
    orphan = tmp_path / "runs/run/checkpoints/chunks/0123456789abcdef0123456789abcdef"
    orphan.write_bytes(b"left by a killed write")
    states[3] = {"model": memory_model(texts, 40, offset=100).state_dict()}
    trail.save(states[3], 3, 2)
    third = set(json.loads((tmp_path / "runs/run/checkpoints" / step_dir(3) / REFS_FILE).read_text())["chunks"])
    assert chunk_files(tmp_path) == second | third  # step 1's own chunks and the orphan are gone
    assert_bitwise(trail.load(2), states[2])
    assert_bitwise(trail.load(3), states[3])


def test_a_missing_or_altered_chunk_is_refused_by_name(tmp_path: Path, pg19_texts) -> None:
    trail = small_trail(str(tmp_path))
    trail.save({"model": memory_model(pg19_texts["train"], 16).state_dict()}, 1, None)
    name = sorted(chunk_files(tmp_path))[0]
    path = tmp_path / "runs/run/checkpoints/chunks" / name
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match=f"{name}.*is corrupt"):
        trail.load(1)
    path.unlink()
    with pytest.raises(UserError, match=f"{name} is missing"):
        trail.load(1)


KILLED_WRITER = textwrap.dedent("""
    import sys, time, torch
    from nightshift.orchestrator.checkpointing import chunks
    from tests.orchestrator.checkpointing.test_chunks import small_trail, memory_model
    from tests.conftest import SHARED_DATA
    import pyarrow.parquet as pq
    texts = pq.read_table(SHARED_DATA / "pg19" / "train.parquet", columns=["text"]).column("text").to_pylist()
    trail = small_trail(sys.argv[1])
    first = {"model": memory_model(texts, 32).state_dict()}
    trail.save(first, 1, None)
    torch.save(first, sys.argv[2])
    write = chunks.ChunkStore._write
    def slow_write(self, name, data):
        write(self, name, data)
        print("chunk", flush=True)
        time.sleep(0.2)
    chunks.ChunkStore._write = slow_write
    trail.chunks.threads = 1
    trail.save({"model": memory_model(texts, 64, offset=50).state_dict()}, 2, 1)
    print("finished", flush=True)
""")


def test_kill_9_during_an_incremental_write_leaves_the_previous_checkpoint(tmp_path: Path, pg19_texts) -> None:
    store, expected = tmp_path / "store", tmp_path / "first.pt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(store), str(expected)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)
    written = 0
    for line in proc.stdout:
        written += line.startswith("chunk")
        if written == 3:  # the second save is half-way through its chunks
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    trail = small_trail(str(store))
    assert trail.latest()["step"] == 1
    assert not (store / "runs/run/checkpoints" / step_dir(2) / "meta.json").exists()
    assert_bitwise(trail.load(1), torch.load(expected, weights_only=True))
    # the next save goes on from there; the killed write's orphans are collected
    third = {"model": memory_model(pg19_texts["train"], 40, offset=100).state_dict()}
    trail.save(third, 3, 1)
    needed = set()
    for step in (1, 3):
        needed |= set(json.loads((store / "runs/run/checkpoints" / step_dir(step) / REFS_FILE).read_text())["chunks"])
    assert chunk_files(store) == needed
    assert_bitwise(trail.load(3), third)


@pytest.mark.s3
def test_incremental_round_trip_on_s3(s3_env, pg19_texts) -> None:
    texts = pg19_texts["train"]
    url = s3_env.make_bucket("chunked-ckpt") + "/team"
    model = memory_model(texts, 48)
    trail = small_trail(url)
    state1 = {"model": model.state_dict()}
    info1 = trail.save(state1, 1, None)
    model.observe(rows(texts, 4, 48))
    state2 = {"model": model.state_dict()}
    info2 = trail.save(state2, 2, 1)
    assert info2["new_chunk_bytes"] < 0.25 * info2["chunk_bytes"] and info1["new_chunks"] == info1["chunks"]
    fresh = small_trail(url)  # another process: nothing cached
    assert_bitwise(fresh.load(1), state1)
    assert_bitwise(fresh.load(2), state2)
    fresh.store.remove(*fresh._p(step_dir(1)), recursive=True)
    fresh.chunks.collect()
    assert set(fresh.chunks.stored()) == fresh.chunks.needed()
    assert_bitwise(small_trail(url).load(2), state2)

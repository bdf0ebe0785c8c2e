"""Checkpoint retention (orchestrator/checkpointing/retention.py, CheckpointTrail.prune).

Real CheckpointTrails on a real local Store: after each save only the newest K
checkpoints and the multiples of `every` stay on disk, the chunks only deleted
checkpoints named are collected while shared ones stay and restore bit-exact,
a pruned step asked for by step says it was deleted by retention, and a kill
in the middle of a prune leaves every kept checkpoint loadable.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest
import torch

from nightshift.orchestrator.checkpointing.chunks import CHUNK_DIR, ChunkStore, chunk_name
from nightshift.orchestrator.checkpointing.retention import Retention, retained_count
from nightshift.orchestrator.checkpointing.trail import RETENTION_RECORD, CheckpointTrail, step_dir
from nightshift.orchestrator.errors import UserError
from nightshift.pipelines.store import Store

CHUNK = 4096  # small chunks and threshold: every tensor below spans whole chunks


def small_trail(root: Path, retention: Retention | None, run: str = "run") -> CheckpointTrail:
    trail = CheckpointTrail(Store.open(str(root)), ("runs", run), retention)
    trail.chunks = ChunkStore(trail.store, trail.chunks.folder, chunk_bytes=CHUNK, min_tensor_bytes=CHUNK)
    return trail


def noise(seed: int, n_bytes: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n_bytes,), dtype=torch.uint8, generator=g)


def state_at(step: int) -> dict:
    """`shared`: the same 2 chunks at every step; `pair`: shared by steps 2k and 2k+1; `own`: this step's only."""
    return {
        "shared": noise(10_000, 2 * CHUNK).view(torch.float32),  # (2048,) float32
        "pair": noise(20_000 + step // 2, CHUNK).view(torch.int64).reshape(8, -1),  # (8, 64) int64
        "own": noise(30_000 + step, CHUNK),  # (4096,) uint8
        "small": torch.arange(step, step + 4),  # stays inside state.pt
        "step": step,
    }


def chunks_of(state: dict) -> set[str]:
    names = set()
    for key in ("shared", "pair", "own"):
        raw = state[key].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        names |= {chunk_name(raw[s : s + CHUNK]) for s in range(0, len(raw), CHUNK)}
    return names


def step_dirs_on_disk(root: Path, run: str = "run") -> set[int]:
    folder = root / "runs" / run / "checkpoints"
    return {int(name.removeprefix("step_")) for name in os.listdir(folder) if name.startswith("step_")}


def chunk_files_on_disk(root: Path, run: str = "run") -> set[str]:
    return set(os.listdir(root / "runs" / run / "checkpoints" / CHUNK_DIR))


def assert_bitwise(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, torch.Tensor):
            assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
            assert torch.equal(got[key].contiguous().view(torch.uint8), value.contiguous().view(torch.uint8)), key
        else:
            assert got[key] == value, key


def save_steps(trail: CheckpointTrail, steps: list[int]) -> None:
    parent = None
    for step in steps:
        trail.save(state_at(step), step, parent)
        parent = step


# ------------------------------------------------------------------ the rule
def test_kept_is_newest_k_plus_multiples_of_every() -> None:
    assert Retention(3, 4).kept(range(1, 11)) == {4, 8, 9, 10}
    assert Retention(3, 0).kept([900, 100, 700, 800, 300]) == {700, 800, 900}  # by step, not by order given
    assert Retention(5, 0).kept([1, 2]) == {1, 2}
    assert Retention().kept([]) == set()
    assert Retention() == Retention(3, 0)
    with pytest.raises(UserError, match="keep_checkpoints=0 must be >= 1"):
        Retention(0)
    with pytest.raises(UserError, match="keep_every=-1"):
        Retention(3, -1)


def test_retained_count_closed_form_matches_the_rule() -> None:
    for n, between, keep, every in itertools.product(range(0, 25), range(1, 8), range(1, 5), range(0, 10)):
        steps = [i * between for i in range(1, n + 1)]
        assert retained_count(n, between, keep, every) == len(Retention(keep, every).kept(steps)), \
            (n, between, keep, every)
    assert retained_count(10**9, 100, 3, 10_000) == 3 + (10**9 - 3) // 100  # O(1), no list of a billion steps
    with pytest.raises(ValueError):
        retained_count(5, 0, 3, 0)


# ------------------------------------------------------------ on a real store
def test_ten_saves_keep_3_every_4_leave_exactly_the_kept_checkpoints(tmp_path: Path) -> None:
    trail = small_trail(tmp_path, Retention(keep=3, every=4))
    save_steps(trail, list(range(1, 11)))
    kept = {4, 8, 9, 10}
    assert step_dirs_on_disk(tmp_path) == kept
    for step in kept:  # each kept checkpoint is whole on disk
        folder = tmp_path / "runs" / "run" / "checkpoints" / step_dir(step)
        assert sorted(os.listdir(folder)) == ["chunks.json", "meta.json", "state.pt"], step
    assert [m["step"] for m in trail.trail()] == sorted(kept)

    # chunks: exactly those a kept checkpoint names; the ones only pruned steps named are gone
    expected = set().union(*(chunks_of(state_at(s)) for s in kept))
    on_disk = chunk_files_on_disk(tmp_path)
    assert on_disk == expected
    assert not chunks_of(state_at(3)) - chunks_of(state_at(4)) & on_disk  # step 3's own and pair chunks: deleted
    assert chunk_name(state_at(5)["pair"].numpy().tobytes()) in on_disk  # step 5 (pruned) shared its pair with 4
    assert chunk_name(state_at(5)["own"].numpy().tobytes()) not in on_disk

    # every kept checkpoint restores bit-exact, from a fresh trail (nothing cached in this process)
    fresh = small_trail(tmp_path, None)
    for step in kept:
        assert_bitwise(fresh.load_step(step).state, state_at(step))
    newest = fresh.load_newest()
    assert newest is not None and newest.meta["step"] == 10 and not newest.fell_back
    assert_bitwise(newest.state, state_at(10))

    latest = json.loads((tmp_path / "runs" / "run" / "checkpoints" / "latest.json").read_text())
    assert latest["step"] == 10
    record = json.loads((tmp_path / "runs" / "run" / "checkpoints" / RETENTION_RECORD).read_text())
    assert record == {"keep": 3, "every": 4, "pruned": [1, 2, 3, 5, 6, 7]}


def test_a_pruned_step_says_it_was_deleted_by_retention(tmp_path: Path) -> None:
    save_steps(small_trail(tmp_path, Retention(keep=3, every=4)), list(range(1, 11)))
    message = ("checkpoint step 3 of run run was deleted by retention (keep_checkpoints=3, keep_every=4); "
               "kept steps: 4, 8, 9, 10")
    for trail in (small_trail(tmp_path, Retention(3, 4)), small_trail(tmp_path, None)):  # fork reads without one
        with pytest.raises(UserError) as err:
            trail.load_step(3)
        assert str(err.value) == message
        with pytest.raises(UserError, match="step 7 of run run was deleted by retention"):
            trail.meta(7)  # what fork asks
        with pytest.raises(UserError, match="step 6 of run run was deleted by retention"):
            trail.load(6)  # what `--step N` resume asks
        with pytest.raises(UserError) as never:  # never written: the message it always had
            trail.load_step(11)
        assert str(never.value) == "no checkpoint at step 11; this run has checkpoints at steps [4, 8, 9, 10]"


def test_without_retention_every_checkpoint_is_kept(tmp_path: Path) -> None:
    trail = small_trail(tmp_path, None)
    assert CheckpointTrail(trail.store, ("runs", "other")).retention is None  # the default: old callers unchanged
    save_steps(trail, list(range(1, 11)))
    assert step_dirs_on_disk(tmp_path) == set(range(1, 11))
    assert chunk_files_on_disk(tmp_path) == set().union(*(chunks_of(state_at(s)) for s in range(1, 11)))
    assert not (tmp_path / "runs" / "run" / "checkpoints" / RETENTION_RECORD).exists()
    assert_bitwise(trail.load_step(1).state, state_at(1))


@pytest.mark.parametrize(("n", "between", "keep", "every"),
                         [(10, 1, 3, 4), (7, 100, 2, 300), (12, 3, 1, 4), (9, 6, 2, 4), (5, 10, 8, 0), (6, 2, 3, 0)])
def test_retained_count_is_what_the_trail_keeps(tmp_path: Path, n: int, between: int, keep: int, every: int) -> None:
    trail = CheckpointTrail(Store.open(str(tmp_path)), ("runs", "run"), Retention(keep, every))
    parent = None
    for i in range(1, n + 1):
        trail.save({"w": torch.full((4,), float(i))}, i * between, parent)
        parent = i * between
    on_disk = step_dirs_on_disk(tmp_path)
    assert len(on_disk) == retained_count(n, between, keep, every)
    assert on_disk == Retention(keep, every).kept([i * between for i in range(1, n + 1)])


def test_checkpoints_above_the_saved_step_are_left_alone(tmp_path: Path) -> None:
    save_steps(small_trail(tmp_path, Retention(keep=2)), list(range(1, 7)))
    assert step_dirs_on_disk(tmp_path) == {5, 6}
    small_trail(tmp_path, Retention(keep=2)).save(state_at(3), 3, None)  # a run started again from an older step
    assert step_dirs_on_disk(tmp_path) == {3, 5, 6}
    assert_bitwise(small_trail(tmp_path, None).load_step(6).state, state_at(6))


class Killed(BaseException):
    """Stands in for a kill: nothing in the trail may catch it."""


def test_a_kill_mid_prune_leaves_every_kept_checkpoint_loadable(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    trail = small_trail(tmp_path, Retention(keep=3))
    save_steps(trail, [1, 2, 3])
    real_remove = Store.remove
    removed: list[tuple[str, ...]] = []

    def remove_then_die(self: Store, *parts: str, recursive: bool = False) -> None:
        if recursive:  # meta.json of step 1 is gone, its state and chunk list not yet
            raise Killed
        real_remove(self, *parts, recursive=recursive)
        removed.append(parts)

    monkeypatch.setattr(Store, "remove", remove_then_die)
    with pytest.raises(Killed):
        trail.save(state_at(4), 4, 3)  # prunes step 1
    monkeypatch.setattr(Store, "remove", real_remove)
    assert removed == [("runs", "run", "checkpoints", step_dir(1), "meta.json")]

    half = tmp_path / "runs" / "run" / "checkpoints" / step_dir(1)
    assert sorted(os.listdir(half)) == ["chunks.json", "state.pt"]  # half-deleted: no longer a complete checkpoint
    after = small_trail(tmp_path, Retention(keep=3))  # the next process
    assert [m["step"] for m in after.trail()] == [2, 3, 4]
    for step in (2, 3, 4):
        assert_bitwise(after.load_step(step).state, state_at(step))
    newest = after.load_newest()
    assert newest is not None and newest.meta["step"] == 4 and not newest.fell_back
    with pytest.raises(UserError, match="step 1 of run run was deleted by retention.*kept steps: 2, 3, 4"):
        after.load_step(1)

    after.save(state_at(5), 5, 4)  # the next save finishes the job
    assert step_dirs_on_disk(tmp_path) == {3, 4, 5}
    assert chunk_files_on_disk(tmp_path) == set().union(*(chunks_of(state_at(s)) for s in (3, 4, 5)))
    for step in (3, 4, 5):
        assert_bitwise(after.load_step(step).state, state_at(step))


def test_prune_logs_the_deleted_steps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    trail = small_trail(tmp_path, Retention(keep=2))
    save_steps(trail, [1, 2])
    with caplog.at_level("INFO", logger="nightshift.orchestrator.checkpointing.trail"):
        trail.save(state_at(3), 3, 2)
    lines = [r.getMessage() for r in caplog.records if "retention" in r.getMessage()]
    assert lines == ["checkpoint retention (keep_checkpoints=2): run run deleted steps 1; kept 2, 3"]

"""Complete, atomic checkpoints on any store, linked into a trail.

Layout under a run: `checkpoints/step_00000100/state.pt` (+ `meta.json`), and
`checkpoints/latest.json` naming the newest. Data is written first and the
pointer last, each atomically, so a kill at any instant leaves the previous
checkpoint loadable. Each meta names its parent step: the trail that resume,
rollback and fork walk; a damaged newest checkpoint (truncated, corrupt,
its record unreadable, a chunk missing) is passed over for the one before it, by name.
States load with `torch.load(weights_only=True)`: a checkpoint can never execute code.
They always load into host memory: the model's `load_state_dict` (and each family's own
state loading) places tensors where they belong, so a resume on a GPU never copies a whole
store through the device, RNG states stay CPU ByteTensors and numpy views stay valid.
Tensors of 1 MiB or more are stored as content-addressed chunks shared by the whole trail
(`checkpoints/chunks/`, listed per checkpoint in `chunks.json`; see chunks.py), so a
checkpoint writes only the chunks that changed since any kept one.
With a `Retention` (retention.py), each save then deletes the checkpoints it no longer
keeps (meta.json first, so a kill mid-delete never leaves a half-deleted one looking
complete) and records their steps in `checkpoints/retention.json`, so asking for one
later says it was deleted by retention rather than that it never existed.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from nightshift.orchestrator.checkpointing.chunks import ChunkStore
from nightshift.orchestrator.checkpointing.retention import Retention
from nightshift.orchestrator.errors import UserError
from nightshift.pipelines.store import FileSpec, Store, StoreFileError, StoreFullError

log = logging.getLogger(__name__)

LATEST = "latest.json"
POINTER = FileSpec(what="checkpoint record",
                   fix="resume falls back to the newest valid checkpoint before it; `--step N` picks one explicitly",
                   fields={"step": int, "path": str, "sha256": str})
RETENTION_RECORD = "retention.json"
RECORD = FileSpec(what="checkpoint retention record",
                  fix="delete it (asking for a pruned step then says only that there is no checkpoint there)",
                  fields={"keep": int, "every": int, "pruned[]": int})
_STEP_DIR = re.compile(r"step_(\d+)")


def step_dir(step: int) -> str:
    return f"step_{step:08d}"


def _steps_text(steps: list[int], most: int = 12) -> str:
    """`700, 800, 900`; a long list as its first and last few and the count, so a message stays one line."""
    if not steps:
        return "none"
    if len(steps) <= most:
        return ", ".join(map(str, steps))
    half = most // 2
    return f"{', '.join(map(str, steps[:half]))}, ..., {', '.join(map(str, steps[-half:]))} ({len(steps):,} in all)"


@dataclass(slots=True)
class CheckpointTrail:
    """One run's checkpoints. `retention` None keeps every checkpoint (what callers that only read, such as
    fork, and older callers get); the trainer passes `Retention(cfg.keep_checkpoints, cfg.keep_every)`."""

    store: Store
    run_path: tuple[str, ...]
    retention: Retention | None = None
    chunks: ChunkStore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.chunks = ChunkStore(self.store, self._p())

    def _p(self, *parts: str) -> tuple[str, ...]:
        return (*self.run_path, "checkpoints", *parts)

    def save(self, state: dict[str, Any], step: int, parent_step: int | None, *, _pause: float = 0.0,
             **meta: Any) -> dict[str, Any]:
        """Chunks and data, then meta, then the pointer; `_pause` (fault drills only) sleeps between each."""
        skeleton, chunk_names, chunk_stats = self.chunks.split(state)  # new chunks first
        buf = io.BytesIO()
        torch.save(skeleton, buf)
        data = buf.getvalue()
        info = {
            "step": step,
            "parent_step": parent_step,
            "path": "/".join(self._p(step_dir(step), "state.pt")),
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "created": time.time(),
            **chunk_stats.as_meta(),
            **meta,
        }
        self.store.write_bytes(data, *self._p(step_dir(step), "state.pt"))
        self.chunks.write_refs(step_dir(step), chunk_names)
        time.sleep(_pause)
        self.store.write_json(info, *self._p(step_dir(step), "meta.json"))
        time.sleep(_pause)
        self.store.write_json(info, *self._p(LATEST))  # the pointer, last
        if self.retention is not None:
            self.prune(step)
        self.chunks.collect()  # chunks no complete checkpoint names any more
        return info

    def prune(self, newest: int) -> list[int]:
        """Delete the checkpoints `self.retention` does not keep, once `newest` is saved and the pointer names it.

        Only steps below `newest` are candidates: `newest` itself (what latest.json
        names) is never deleted, and checkpoints above it (left by a `--step N`
        resume from an older step) are left alone, to be overwritten when the run
        gets there. Directories below `newest` without a meta.json (a killed write,
        a killed prune) load as nothing and are removed too. Crash safety: a
        checkpoint's meta.json goes first, so from then on `trail()`, `load_newest`
        and the chunk collector treat it as absent; its other files and the chunks
        only it named go after, and whatever a kill leaves is removed by the next
        save. Kept checkpoints are never touched. Returns the deleted steps (complete
        checkpoints only). A failure to delete is logged, not raised: the checkpoint
        itself is saved, and the next save tries again.
        """
        assert self.retention is not None
        complete: list[int] = []
        incomplete: list[int] = []
        for name in self.store.listdir(*self._p()):
            match = _STEP_DIR.fullmatch(name)
            if match is None or int(match.group(1)) > newest:
                continue
            step = int(match.group(1))
            (complete if self.store.exists(*self._p(name, "meta.json")) else incomplete).append(step)
        kept = self.retention.kept([*complete, newest]) | {newest}
        doomed = sorted(s for s in complete if s not in kept)
        leftovers = sorted(s for s in incomplete if s != newest)
        if not doomed and not leftovers:
            return []
        if doomed:
            try:  # before deleting: a pruned step's message never goes missing
                self._record_pruned(doomed)
            except (OSError, StoreFullError) as exc:  # deleting frees space: go on without the record
                log.warning("checkpoint retention: record not written (%s); deleting anyway", exc)
        try:
            for step in doomed:
                self.store.remove(*self._p(step_dir(step), "meta.json"))  # first: no longer a complete checkpoint
            for step in doomed + leftovers:
                self.store.remove(*self._p(step_dir(step)), recursive=True)
        except OSError as exc:
            log.warning("checkpoint retention: deleting stopped (%s: %s); the next save goes on", type(exc).__name__,
                        exc)
        if doomed:
            log.info("checkpoint retention (%s): run %s deleted steps %s; kept %s", self.retention.describe(),
                     self.run_path[-1], _steps_text(doomed), _steps_text(sorted(kept)))
        return doomed

    def _record_pruned(self, steps: list[int]) -> None:
        assert self.retention is not None
        record = self._retention_record() or {"pruned": []}
        record.update(keep=self.retention.keep, every=self.retention.every,
                      pruned=sorted(set(record["pruned"]) | set(steps)))
        self.store.write_json(record, *self._p(RETENTION_RECORD))

    def _retention_record(self) -> dict[str, Any] | None:
        """What retention deleted so far (`keep`, `every`, `pruned` steps); None when nothing (or unreadable)."""
        try:
            return self.store.read_json(*self._p(RETENTION_RECORD), spec=RECORD)
        except FileNotFoundError:
            return None
        except StoreFileError as exc:
            log.warning("%s; starting a new one", exc)
            return None

    def latest(self) -> dict[str, Any] | None:
        """The pointer's checkpoint; when the pointer itself is damaged, the newest complete one in the trail."""
        if not self.store.exists(*self._p(LATEST)):
            return None
        try:
            return self.store.read_json(*self._p(LATEST), spec=POINTER)
        except StoreFileError as exc:
            log.warning("%s; using the newest complete checkpoint in the trail instead", exc)
            metas = self.trail()
            return metas[-1] if metas else None

    def trail(self) -> list[dict[str, Any]]:
        """Every complete checkpoint (meta written and readable), oldest first."""
        metas = []
        for name in self.store.listdir(*self._p()):
            if name.startswith("step_") and self.store.exists(*self._p(name, "meta.json")):
                try:
                    metas.append(self.store.read_json(*self._p(name, "meta.json"), spec=POINTER))
                except StoreFileError as exc:  # an unusable checkpoint is not part of the trail
                    log.warning("%s; skipping that checkpoint", exc)
        return sorted(metas, key=lambda m: m["step"])

    def meta(self, step: int) -> dict[str, Any]:
        """The meta of the checkpoint at `step`; a step not on disk is a one-line `UserError` naming those that are.

        Used by `load_step` (`--step N` resume) and fork. A step retention deleted
        says so, with the settings that deleted it, whatever `self.retention` is
        (fork reads a trail without one).
        """
        if not self.store.exists(*self._p(step_dir(step), "meta.json")):
            steps = [m["step"] for m in self.trail()]
            record = self._retention_record()
            if record is not None and step in record["pruned"]:
                how = Retention(max(1, record["keep"]), max(0, record["every"])).describe()
                raise UserError(f"checkpoint step {step} of run {self.run_path[-1]} was deleted by retention ({how}); "
                                f"kept steps: {_steps_text(steps)}")
            raise UserError(f"no checkpoint at step {step}; this run has checkpoints at steps {steps or 'none'}")
        return self.store.read_json(*self._p(step_dir(step), "meta.json"), spec=POINTER)

    def load(self, step: int | None = None) -> dict[str, Any]:
        """The state at `step` (strict), or at the newest checkpoint that verifies when `step` is None."""
        found = self.load_newest() if step is None else self.load_step(step)
        if found is None:
            raise UserError(f"run {self.run_path[-1]} has no checkpoint yet")
        return found.state

    def load_step(self, step: int) -> "Loaded":
        meta = self.meta(step)
        return Loaded(meta=meta, state=self._load(meta))

    def load_newest(self) -> "Loaded | None":
        """The newest checkpoint that verifies and loads, walking back the trail past damaged ones.

        What resume, sweep reruns, Ray restarts and Modal retries use: a truncated
        or corrupt latest checkpoint costs the steps since the one before, not the run.
        The checkpoints passed over are named in `Loaded.skipped`.
        """
        if not self.store.exists(*self._p(LATEST)):
            return None  # data first, pointer last: without a pointer nothing was committed
        skipped: list[str] = []
        try:
            pointer: dict[str, Any] | None = self.store.read_json(*self._p(LATEST), spec=POINTER)
        except StoreFileError as exc:
            pointer = None
            skipped.append(str(exc))
        older = [m for m in reversed(self.trail()) if pointer is None or m["step"] < pointer["step"]]
        for meta in ([pointer] if pointer else []) + older:
            try:
                return Loaded(meta=meta, state=self._load(meta), skipped=tuple(skipped))
            except UserError as exc:
                skipped.append(str(exc))
        raise UserError(f"{skipped[0]}; no older checkpoint of run {self.run_path[-1]} loads either "
                        f"({len(skipped)} tried): restore the store, or delete the run's checkpoints/ folder "
                        "to train it from the start")

    def _load(self, meta: dict[str, Any]) -> dict[str, Any]:
        try:
            data = self.store.read_bytes(*self._p(step_dir(meta["step"]), "state.pt"))
        except FileNotFoundError:
            raise UserError(f"checkpoint {meta['path']} is missing its state file") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != meta["sha256"]:
            raise UserError(
                f"checkpoint {meta['path']} is corrupt: sha256 {digest[:16]}... != expected {meta['sha256'][:16]}..."
                f" ({len(data):,} of {meta.get('bytes', '?')} bytes)"
            )
        try:
            skeleton = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - unpickling errors are varied
            raise UserError(f"checkpoint {meta['path']} cannot be loaded safely: {type(exc).__name__}: {exc}") from None
        return self.chunks.join(skeleton)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A checkpoint's state, its meta, and the newer checkpoints that had to be passed over (why, each)."""

    meta: dict[str, Any]
    state: dict[str, Any]
    skipped: tuple[str, ...] = ()

    @property
    def fell_back(self) -> bool:
        return bool(self.skipped)

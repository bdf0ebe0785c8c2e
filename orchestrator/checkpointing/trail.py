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
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from nightshift.orchestrator.checkpointing.chunks import ChunkStore
from nightshift.orchestrator.errors import UserError
from nightshift.pipelines.store import FileSpec, Store, StoreFileError

log = logging.getLogger(__name__)

LATEST = "latest.json"
POINTER = FileSpec(what="checkpoint record",
                   fix="resume falls back to the newest valid checkpoint before it; `--step N` picks one explicitly",
                   fields={"step": int, "path": str, "sha256": str})


def step_dir(step: int) -> str:
    return f"step_{step:08d}"


@dataclass(slots=True)
class CheckpointTrail:
    store: Store
    run_path: tuple[str, ...]
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
        self.chunks.collect()  # chunks no complete checkpoint names any more
        return info

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
        if not self.store.exists(*self._p(step_dir(step), "meta.json")):
            steps = [m["step"] for m in self.trail()]
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

"""Complete, atomic checkpoints on any store, linked into a trail.

Layout under a run: `checkpoints/step_00000100/state.pt` (+ `meta.json`), and
`checkpoints/latest.json` naming the newest. Data is written first and the
pointer last, each atomically, so a kill at any instant leaves the previous
checkpoint loadable. Each meta names its parent step: the trail that resume,
rollback and fork walk. States load with `torch.load(weights_only=True)`:
a checkpoint can never execute code. Tensors of 1 MiB or more are stored as
content-addressed chunks shared by the whole trail (`checkpoints/chunks/`,
listed per checkpoint in `chunks.json`; see chunks.py), so a checkpoint
writes only the chunks that changed since any kept one.
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from orchestrator.chunks import ChunkStore
from orchestrator.errors import UserError
from pipelines.store import Store

LATEST = "latest.json"


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
        if not self.store.exists(*self._p(LATEST)):
            return None
        return self.store.read_json(*self._p(LATEST))

    def trail(self) -> list[dict[str, Any]]:
        """Every complete checkpoint (meta written), oldest first."""
        metas = []
        for name in self.store.listdir(*self._p()):
            if name.startswith("step_") and self.store.exists(*self._p(name, "meta.json")):
                metas.append(self.store.read_json(*self._p(name, "meta.json")))
        return sorted(metas, key=lambda m: m["step"])

    def meta(self, step: int) -> dict[str, Any]:
        if not self.store.exists(*self._p(step_dir(step), "meta.json")):
            steps = [m["step"] for m in self.trail()]
            raise UserError(f"no checkpoint at step {step}; this run has checkpoints at steps {steps or 'none'}")
        return self.store.read_json(*self._p(step_dir(step), "meta.json"))

    def load(self, step: int | None = None, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        meta = self.latest() if step is None else self.meta(step)
        if meta is None:
            raise UserError(f"run {self.run_path[-1]} has no checkpoint yet")
        data = self.store.read_bytes(*self._p(step_dir(meta["step"]), "state.pt"))
        digest = hashlib.sha256(data).hexdigest()
        if digest != meta["sha256"]:
            raise UserError(
                f"checkpoint {meta['path']} is corrupt: sha256 {digest[:16]}... != expected {meta['sha256'][:16]}..."
            )
        try:
            skeleton = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - unpickling errors are varied
            raise UserError(f"checkpoint {meta['path']} cannot be loaded safely: {type(exc).__name__}: {exc}") from None
        return self.chunks.join(skeleton, map_location)

"""Content-addressed chunks for the large tensors of a checkpoint: a checkpoint writes only what changed.

Why: a memory family's state is dominated by a store that mostly grows (the
holographic episode store, count tables). Rewriting all of it at every
checkpoint makes checkpoint cost follow the total memory (10.8 GB for the
giant run's 100 M episodes), not the new data since the last one.

How: every tensor of at least `min_tensor_bytes` is cut into `chunk_bytes`
pieces of its raw bytes, each named by its 128-bit xxh3 hash and stored once
under `checkpoints/chunks/<hash>`. The checkpoint's `state.pt` keeps
everything else plus, in place of each such tensor, a small reference
`{dtype, shape, chunks}`; `step_N/chunks.json` lists the chunk names that
checkpoint needs. A chunk whose content is already stored is not written
again, so an append-only store writes only its new tail and a count table
writes the chunks where new counts landed. (A store that replaces rows at
uniformly random places, as a full reservoir does, touches every chunk: then
a checkpoint costs about what a full one does.)

Safety: chunks are written first (each atomically, and a name is its content,
so an existing chunk is never rewritten), then state.pt, chunks.json, meta and
the pointer, so a kill at any instant leaves the previous checkpoint and all
its chunks intact. `collect()` runs after a save and deletes only chunks that
no complete checkpoint (one whose meta.json exists) names; it deletes nothing
when a complete checkpoint's list is missing. One writer per run (rank 0), as
for the rest of the trail. Restores verify every chunk's hash and rebuild the
exact bytes, so a resumed run is bitwise the one that was saved.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import xxhash

from nightshift.orchestrator.errors import UserError
from nightshift.pipelines.store import Store

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20  # 1 MiB: small enough that an appended tail rewrites little, large enough for few files
MIN_TENSOR_BYTES = 1 << 20  # smaller tensors stay inside state.pt
IO_THREADS = 8  # chunk writes/reads in flight (S3 latency; local fsyncs overlap)
CHUNK_DIR = "chunks"
REFS_FILE = "chunks.json"
REF_KEY = "__nightshift_chunked_tensor__"


def chunk_name(data: memoryview | bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


@dataclass(slots=True)
class SaveStats:
    """What one save wrote: the meta records these so checkpoint cost is visible per checkpoint."""

    tensors: int = 0  # tensors stored as chunks
    chunks: int = 0  # distinct chunks this checkpoint needs
    chunk_bytes: int = 0  # their total size
    new_chunks: int = 0  # written by this save (the rest were already stored)
    new_chunk_bytes: int = 0

    def as_meta(self) -> dict[str, int]:
        return {"chunked_tensors": self.tensors, "chunks": self.chunks, "chunk_bytes": self.chunk_bytes,
                "new_chunks": self.new_chunks, "new_chunk_bytes": self.new_chunk_bytes}


@dataclass(slots=True)
class ChunkStore:
    """The chunks of one run's checkpoints, under `folder` (the run's `checkpoints/`)."""

    store: Store
    folder: tuple[str, ...]
    chunk_bytes: int = CHUNK_BYTES
    min_tensor_bytes: int = MIN_TENSOR_BYTES
    threads: int = IO_THREADS
    # step dir -> names (immutable once complete)
    _refs: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)

    def _p(self, *parts: str) -> tuple[str, ...]:
        return (*self.folder, *parts)

    # ------------------------------------------------------------------ save
    def split(self, state: Any) -> tuple[Any, list[str], SaveStats]:
        """Write the chunks of every large tensor in `state`; return (state with references, chunk names, stats)."""
        pieces: dict[str, memoryview] = {}
        stats = SaveStats()

        def replace(t: torch.Tensor) -> Any:
            if not _chunkable(t, self.min_tensor_bytes):
                return t
            raw = memoryview(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())  # (nbytes,)
            spans = [raw[s : s + self.chunk_bytes] for s in range(0, len(raw), self.chunk_bytes)]
            names = list(self._map(chunk_name, spans))
            for name, span in zip(names, spans, strict=True):
                pieces.setdefault(name, span)
            stats.tensors += 1
            return {REF_KEY: 1, "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                    "bytes": len(raw), "chunk_bytes": self.chunk_bytes, "chunks": names}

        skeleton = _walk(state, replace)
        have = set(self.stored())
        missing = [name for name in pieces if name not in have]
        list(self._map(lambda name: self._write(name, pieces[name]), missing))
        stats.chunks, stats.chunk_bytes = len(pieces), sum(len(p) for p in pieces.values())
        stats.new_chunks, stats.new_chunk_bytes = len(missing), sum(len(pieces[n]) for n in missing)
        return skeleton, sorted(pieces), stats

    def _write(self, name: str, data: memoryview) -> None:
        self.store.write_bytes(data if self.store.is_local else bytes(data), *self._p(CHUNK_DIR, name))

    def write_refs(self, step_name: str, names: list[str]) -> None:
        """The chunk list of one checkpoint; written after state.pt and before its meta."""
        self.store.write_json({"chunks": names}, *self._p(step_name, REFS_FILE))
        self._refs.pop(step_name, None)  # a rollback may rewrite a step: never trust an older list

    # ------------------------------------------------------------------ load
    def join(self, skeleton: Any) -> Any:
        """Replace every chunk reference in a loaded state by its host tensor (exact bytes, hashes verified)."""
        refs: list[dict[str, Any]] = []
        _walk(skeleton, None, on_ref=refs.append)
        if not refs:
            return skeleton
        buffers = {id(r): torch.empty(int(r["bytes"]), dtype=torch.uint8) for r in refs}
        jobs = []
        for r in refs:
            total, step = int(r["bytes"]), int(r["chunk_bytes"])
            if len(r["chunks"]) != -(-total // step):
                raise UserError(f"checkpoint tensor reference lists {len(r['chunks'])} chunks for {total:,} bytes")
            for i, name in enumerate(r["chunks"]):
                jobs.append((buffers[id(r)], i * step, min(step, total - i * step), name))
        list(self._map(lambda job: self._read_into(*job), jobs))

        def build(r: dict[str, Any]) -> torch.Tensor:
            return buffers[id(r)].view(_dtype(r["dtype"])).reshape(r["shape"])

        return _walk(skeleton, None, on_ref=build)

    def _read_into(self, out: torch.Tensor, offset: int, length: int, name: str) -> None:
        where = self.store.uri(*self._p(CHUNK_DIR, name))
        try:
            data = self.store.read_bytes(*self._p(CHUNK_DIR, name))
        except FileNotFoundError:
            raise UserError(f"checkpoint chunk {where} is missing") from None
        if len(data) != length or chunk_name(data) != name:
            raise UserError(f"checkpoint chunk {where} is corrupt: {len(data):,} bytes (expected {length:,}), "
                            f"xxh3 {chunk_name(data)[:16]}... (expected its name)")
        out.numpy()[offset : offset + len(data)] = np.frombuffer(data, dtype=np.uint8)

    # ---------------------------------------------------------------- collect
    def stored(self) -> list[str]:
        """Names of every stored chunk (fresh listing: never a cached one)."""
        try:
            entries = self.store.fs.ls(self.store.path(*self._p(CHUNK_DIR)), detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return [e.rstrip("/").rsplit("/", 1)[-1] for e in entries]

    def needed(self) -> set[str] | None:
        """Union of the chunk lists of every complete checkpoint; None if one is missing (then collect nothing)."""
        out: set[str] = set()
        for name in self.store.listdir(*self.folder):
            if not name.startswith("step_"):
                continue
            if name not in self._refs:  # complete checkpoints are read once per process
                if not self.store.exists(*self._p(name, "meta.json")):
                    continue
                if not self.store.exists(*self._p(name, REFS_FILE)):
                    meta = self.store.read_json(*self._p(name, "meta.json"))
                    if meta.get("chunks", 0):
                        log.warning("checkpoint %s names chunks but has no %s; collecting nothing", name, REFS_FILE)
                        return None
                    self._refs[name] = frozenset()  # written before chunks existed: needs none
                else:
                    self._refs[name] = frozenset(self.store.read_json(*self._p(name, REFS_FILE))["chunks"])
            out |= self._refs[name]
        return out

    def collect(self) -> dict[str, int]:
        """Delete chunks (and temporary files of killed writes) that no complete checkpoint needs."""
        needed = self.needed()
        if needed is None:
            return {"removed": 0, "kept": len(self.stored())}
        stored = self.stored()
        doomed = [n for n in stored if n not in needed]
        try:
            list(self._map(lambda n: self.store.remove(*self._p(CHUNK_DIR, n)), doomed))
        except OSError as exc:  # the checkpoint is complete; what is left is collected after the next save
            log.warning("checkpoint chunks: collection stopped (%s: %s)", type(exc).__name__, exc)
        if doomed:
            log.info("checkpoint chunks: collected %d no checkpoint needs", len(doomed))
        return {"removed": len(doomed), "kept": len(stored) - len(doomed)}

    def _map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterable[Any]:
        items = list(items)
        if len(items) <= 1 or self.threads <= 1:
            return map(fn, items)
        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="chunks") as pool:
            return list(pool.map(fn, items))


def _chunkable(t: torch.Tensor, min_bytes: int) -> bool:
    return (t.layout == torch.strided and not t.is_quantized and t.device.type != "meta"
            and t.numel() * t.element_size() >= min_bytes)


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise UserError(f"checkpoint names an unknown tensor dtype {name!r}")
    return dtype


def _walk(obj: Any, on_tensor: Callable[[torch.Tensor], Any] | None, *,
          on_ref: Callable[[dict[str, Any]], Any] | None = None) -> Any:
    """Copy of nested dicts/lists/tuples with tensors (or chunk references) replaced; other leaves shared."""
    if isinstance(obj, torch.Tensor):
        return on_tensor(obj) if on_tensor is not None else obj
    if isinstance(obj, dict):
        if on_ref is not None and obj.get(REF_KEY) == 1:
            return on_ref(obj)
        out = copy.copy(obj)  # keeps the type and attributes (a state_dict's `_metadata`)
        for key, value in obj.items():
            out[key] = _walk(value, on_tensor, on_ref=on_ref)
        return out
    if isinstance(obj, list):
        return [_walk(v, on_tensor, on_ref=on_ref) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_walk(v, on_tensor, on_ref=on_ref) for v in obj)
    return obj


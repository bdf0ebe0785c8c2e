"""The shard format: an Arrow IPC *stream* per shard, one row per document.

Columns: `doc_id` (string), `tokens` (list<uint16|uint32>, no end-of-text),
`n_bytes` (UTF-8 bytes of exactly that document text). The manifest holds each
shard's sha256; readers verify it before trusting a single token.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from nightshift.pipelines.errors import DataError
from nightshift.pipelines.tokenizers import Tokenizer

BATCH_DOCS = 1024  # rows per record batch inside a shard


@dataclass(frozen=True, slots=True)
class ShardTask:
    """One shard's worth of documents, decided by the driver; written by whichever worker gets it."""

    split: str
    index: int
    doc_ids: list[str]
    texts: list[str]
    n_bytes: list[int]

    @property
    def path(self) -> str:
        return shard_path(self.split, self.index)

    @property
    def digest(self) -> str:
        """What the shard must contain (ids and sizes): a ledger entry is reused only if this matches."""
        h = hashlib.sha256()
        for doc_id, n in zip(self.doc_ids, self.n_bytes):
            h.update(f"{doc_id}\t{n}\n".encode("utf-8", "surrogatepass"))
        return h.hexdigest()


def shard_path(split: str, index: int) -> str:
    return f"shards/{split}/{index:05d}.arrow"


def encode_shard(tokenizer: Tokenizer, task: ShardTask) -> tuple[bytes, dict]:
    """Tokenize a task -> (Arrow stream bytes, manifest entry)."""
    flat, offsets = tokenizer.encode_docs(task.texts)
    value_type = pa.uint16() if flat.dtype == np.uint16 else pa.uint32()
    schema = pa.schema(
        [("doc_id", pa.string()), ("tokens", pa.list_(value_type)), ("n_bytes", pa.int64())],
        metadata={"nightshift": json.dumps({"split": task.split, "index": task.index,
                                            "tokenizer": tokenizer.name})},
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        for lo in range(0, len(task.doc_ids), BATCH_DOCS):
            hi = min(lo + BATCH_DOCS, len(task.doc_ids))
            offs = (offsets[lo:hi + 1] - offsets[lo]).astype(np.int32)
            tokens = pa.ListArray.from_arrays(pa.array(offs), pa.array(flat[offsets[lo]:offsets[hi]], type=value_type))
            writer.write_batch(pa.record_batch(
                [pa.array(task.doc_ids[lo:hi], pa.string()), tokens, pa.array(task.n_bytes[lo:hi], pa.int64())],
                schema=schema))
    data = sink.getvalue().to_pybytes()
    entry = {
        "split": task.split, "index": task.index, "path": task.path,
        "docs": len(task.doc_ids), "tokens": int(offsets[-1]), "bytes": int(sum(task.n_bytes)),
        "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "digest": task.digest,
    }
    return data, entry


@dataclass(frozen=True, slots=True)
class ShardData:
    """A verified shard in memory: flat tokens (native dtype) with per-document offsets."""

    doc_ids: list[str]
    tokens: np.ndarray  # (total_tokens,)
    offsets: np.ndarray  # (docs + 1,) int64
    n_bytes: np.ndarray  # (docs,) int64

    def stream(self, eot_id: int) -> np.ndarray:
        """Training stream: each document's tokens followed by end-of-text."""
        docs = len(self.doc_ids)
        out = np.empty(len(self.tokens) + docs, dtype=self.tokens.dtype)  # (tokens + docs,)
        eot_pos = self.offsets[1:] + np.arange(docs)
        keep = np.ones(len(out), dtype=bool)
        keep[eot_pos] = False
        out[keep] = self.tokens
        out[eot_pos] = eot_id
        return out


def decode_shard(data: bytes, entry: dict, where: str) -> ShardData:
    """Check size and sha256 against the manifest entry, then parse; errors name the shard."""
    expected = entry["sha256"]
    actual = hashlib.sha256(data).hexdigest()
    if len(data) != entry.get("size", len(data)) or actual != expected:
        raise DataError(
            f"shard {where} is truncated or altered ({len(data)} bytes, sha256 {actual[:16]}...); "
            f"expected {entry.get('size')} bytes with sha256 {expected}; "
            "delete the dataset folder and re-run nightshift prepare"
        )
    try:
        table = pa.ipc.open_stream(pa.BufferReader(data)).read_all()
    except pa.ArrowInvalid as exc:
        raise DataError(f"shard {where} is not an Arrow stream ({exc}); expected sha256 {expected}") from None
    tokens_col = table.column("tokens").combine_chunks()
    offsets = np.asarray(tokens_col.offsets, dtype=np.int64)
    values = np.asarray(tokens_col.values)
    return ShardData(
        doc_ids=table.column("doc_id").to_pylist(),
        tokens=values[offsets[0]:offsets[-1]],
        offsets=offsets - offsets[0],
        n_bytes=np.asarray(table.column("n_bytes"), dtype=np.int64),
    )

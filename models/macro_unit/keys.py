"""Byte windows packed into uint64 keys, and the run-length helpers every table uses.

One packing serves counting, lookup and unit proposals: the key of an order-k
n-gram ending at position i is, big-endian, `(x[i], x[i-1], ..., x[i-k])`, i.e.
the next byte on top and the context bytes below it, most recent first. Why this
layout:

- the order-k key is the order-K window shifted right by 8 (K - k) bits, so ONE
  sort of the order-K windows sorts every lower order too (counting costs one
  sort per chunk, not one per order);
- dropping the oldest context byte is `key >> 8`, which is what Kneser-Ney
  continuation counts need and keeps sorted tables sorted;
- a key read backwards is the substring `x[i-k .. i]`, so the n-gram tables
  double as the substring counts that propose macro-units.

Eight bytes fit in 64 bits, which caps the context at MAX_ORDER = 7 bytes.
"""

from __future__ import annotations

import numpy as np

MAX_ORDER = 7  # context bytes that fit beside the next byte in one uint64 key
U64 = np.uint64


def windows(x: np.ndarray, order: int) -> np.ndarray:
    """(N,) uint8 -> (N,) uint64 keys `(x[i], x[i-1], ..., x[i-order])` (zero bytes before the start)."""
    n = len(x)
    padded = np.zeros(n + MAX_ORDER + 1, dtype=np.uint8)
    padded[MAX_ORDER : MAX_ORDER + n] = x
    # Reading bytes i-7..i as a little-endian uint64 puts x[i] in the top byte: exactly
    # the order-7 key. An unaligned strided view makes that a single copy.
    w = np.ndarray(shape=(n,), dtype="<u8", buffer=padded, offset=0, strides=(1,)).astype(U64)  # (N,)
    if order < MAX_ORDER:
        w >>= U64(8 * (MAX_ORDER - order))
    return w


def context_mask(k: int) -> np.uint64:
    """Mask selecting the k context bytes of an order-k key (everything below the next byte)."""
    return U64((1 << (8 * k)) - 1) if k < 8 else U64(0xFFFFFFFFFFFFFFFF)


def run_lengths(sorted_keys: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys (with optional per-key weights) -> (unique keys, summed weights as int64)."""
    n = len(sorted_keys)
    if n == 0:
        return sorted_keys[:0].astype(U64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    keys = sorted_keys[starts]
    if weights is None:
        counts = np.diff(np.append(starts, n)).astype(np.int64)
    else:
        counts = np.add.reduceat(weights.astype(np.int64, copy=False), starts)
    return keys, counts


def merge_sorted(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sum several (sorted unique keys, counts) runs into one sorted unique run.

    A stable argsort of the concatenation is a timsort over already-sorted runs,
    i.e. a linear merge; measured 2x faster than binary-searching one run in the
    other and inserting (the searches miss the cache on large tables).
    """
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return np.zeros(0, dtype=U64), np.zeros(0, dtype=np.int64)
    if len(parts) == 1:
        return parts[0][0], parts[0][1]
    keys = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    perm = np.argsort(keys, kind="stable")
    return run_lengths(keys[perm], counts[perm])


def lookup(table_keys: np.ndarray, values: np.ndarray, sorted_queries: np.ndarray) -> np.ndarray:
    """values[key] for each query (0 where absent); queries must be sorted (fast searchsorted path)."""
    if len(table_keys) == 0 or len(sorted_queries) == 0:
        return np.zeros(len(sorted_queries), dtype=values.dtype)
    idx = np.searchsorted(table_keys, sorted_queries)  # (Q,)
    np.minimum(idx, len(table_keys) - 1, out=idx)
    found = table_keys[idx] == sorted_queries
    return np.where(found, values[idx], values.dtype.type(0))


def splitmix64(x: np.ndarray) -> np.ndarray:
    """A 64-bit mixing finaliser (vectorised): well-spread hashes from structured integers."""
    with np.errstate(over="ignore"):
        z = x.astype(U64) + U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
        return z ^ (z >> U64(31))


def key_to_bytes(key: int, k: int) -> bytes:
    """The substring an order-k key stands for: its k+1 bytes, oldest first."""
    return int(key).to_bytes(k + 1, "big")[::-1]

"""Hashed contexts of any length: byte suffixes, unit chains, and where each byte sits in its fragment.

The packed keys of `keys.py` stop at 7 context bytes. The in-context cache and
the unit contexts need longer ones (up to 32 bytes, or a chain of units), so
they use 64-bit hashes instead: `mix` folds one value into a running hash.
Collisions among the few million contexts of one call are ~1e-7 likely and
only ever merge two contexts' counts (probabilities stay normalised).

A byte "stream" is many text fragments concatenated (rows, documents): each
byte carries its fragment id and its offset inside the fragment, and no
context reaches across a fragment start.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from nightshift.models.macro_unit.keys import U64, splitmix64

_GOLD = U64(0x9E3779B97F4A7C15)


def mix(h: np.ndarray, v: np.ndarray | int) -> np.ndarray:
    """Fold v (uint64-castable) into hash h: order-sensitive, well spread."""
    with np.errstate(over="ignore"):
        return splitmix64(h ^ (np.asarray(v).astype(np.int64).astype(U64) * _GOLD + U64(0x632BE59BD9B4E019)))


@dataclass(slots=True)
class Stream:
    """Fragments laid end to end, with per-byte bookkeeping. One trailing pad byte is allowed (see `pad`)."""

    x: np.ndarray  # (N,) uint8
    frag: np.ndarray  # (N,) int64 fragment id of each byte
    pos: np.ndarray  # (N,) int64 offset of each byte inside its fragment (= context bytes available)

    @classmethod
    def of(cls, fragments: list[bytes]) -> "Stream":
        lens = np.array([len(f) for f in fragments], dtype=np.int64)
        x = np.frombuffer(b"".join(fragments), dtype=np.uint8)
        frag = np.repeat(np.arange(len(lens)), lens)
        pos = np.arange(len(x)) - np.repeat(np.cumsum(lens) - lens, lens)
        return cls(x, frag, pos)

    def __len__(self) -> int:
        return len(self.x)

    def previous(self, lag: int) -> np.ndarray:
        """(N,) x[i - lag] (0 where that is before the stream start; callers check pos >= lag)."""
        out = np.zeros(len(self.x), dtype=np.uint8)
        if lag < len(self.x):
            out[lag:] = self.x[: len(self.x) - lag]
        return out


def suffix_hashes(s: Stream, max_len: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (l, h) for l = 1..max_len: h (N,) = hash of the l bytes before each position.

    Built by extending one byte further back each step, so a string hashes the
    same wherever it occurs (units hash with `string_suffix_hash`).
    """
    h = np.full(len(s), U64(0x51ED27), dtype=U64)
    for lag in range(1, max_len + 1):
        h = mix(h, s.previous(lag).astype(np.int64) + (lag << 8))
        yield lag, h


def string_suffix_hash(data: bytes) -> int:
    """The value `suffix_hashes` gives at a position preceded by exactly these bytes."""
    h = np.full(1, U64(0x51ED27), dtype=U64)
    for lag in range(1, len(data) + 1):
        h = mix(h, np.array([data[len(data) - lag] + (lag << 8)]))
    return int(h[0])


def byte_contexts(s: Stream, orders: tuple[int, ...]) -> dict[int, np.ndarray]:
    """{k: (N,) hash of (fragment, the k bytes before each position)}; meaningful where pos >= k.

    One incremental pass: order k extends order k - 1 by one older byte.
    """
    out = {}
    h = mix(np.full(len(s), U64(0xC0FFEE), dtype=U64), s.frag)
    for lag in range(1, max(orders, default=0) + 1):
        h = mix(h, s.previous(lag))
        if lag in orders:
            out[lag] = h
    return out

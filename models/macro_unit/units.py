"""The macro-unit codebook: greedy longest-match encoding with byte fallback, and exact decoding.

Ids 0..255 are the bytes themselves; unit j has id 256 + j. Encoding is greedy
longest match, left to right; any byte that starts no unit is emitted as
itself, so every byte string encodes and `decode(encode(x)) == x`.

Speed: a Python loop over a dict trie runs at well under 1 MB/s. Instead the
trie is compiled into ONE regular expression whose structure is the trie:
each node is `(?:a<subtrie>|b<subtrie>|...)`, with an empty last alternative
when the node ends a unit. Python's `re` tries alternatives in order and
backtracks, so the deeper (longer) match always wins over stopping early:
exactly greedy longest match, run by the C regex engine (about 10 MB/s).
A plain alternation of units sorted longest-first is the same language but
100x slower (every unit is tried at every position).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cached_property

import numpy as np

_END = -1  # trie key marking "a unit ends here"


def _trie(units: Iterable[bytes]) -> dict:
    root: dict = {}
    for u in units:
        node = root
        for b in u:
            node = node.setdefault(b, {})
        node[_END] = True
    return root


def _pattern(node: dict) -> tuple[bytes, int]:
    """A trie node -> (its regex, units below it). Busier branches first: fewer failed tries."""
    kids = []
    for key, child in node.items():
        if key != _END:
            pat, weight = _pattern(child)
            kids.append((-weight, key, re.escape(bytes([key])) + pat))
    kids.sort()
    alts = [pat for _, _, pat in kids]
    weight = -sum(w for w, _, _ in kids) + (_END in node)
    if not alts:
        return b"", weight
    if _END in node:
        alts.append(b"")  # stopping here is the last resort: longer matches are tried first
    return (alts[0] if len(alts) == 1 else b"(?:" + b"|".join(alts) + b")"), weight


class Codebook:
    """An immutable set of units (byte strings of length >= 2) with encode/decode."""

    def __init__(self, units: Iterable[bytes] = ()) -> None:
        self.units: tuple[bytes, ...] = tuple(units)
        self.table: list[bytes] = [bytes([i]) for i in range(256)] + list(self.units)  # id -> bytes
        self.ids: dict[bytes, int] = {b: i for i, b in enumerate(self.table)}
        if len(self.ids) != len(self.table) or any(len(u) < 2 for u in self.units):
            raise ValueError("units must be distinct byte strings of length >= 2")

    def __len__(self) -> int:
        return len(self.units)

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.units)

    @cached_property
    def regex(self) -> re.Pattern[bytes]:
        pat, _ = _pattern(self.trie)
        # The root never ends a unit, so `pat` has no empty branch; `.` is the byte fallback.
        return re.compile(pat + b"|." if pat else b".", re.DOTALL)

    @cached_property
    def trie(self) -> dict:
        return _trie(self.units)

    @cached_property
    def lengths(self) -> np.ndarray:
        return np.array([len(b) for b in self.table], dtype=np.int64)  # (V,)

    def encode(self, data: bytes) -> np.ndarray:
        """bytes -> (n,) int32 ids by greedy longest match (bytes where no unit starts)."""
        if not self.units:
            return np.frombuffer(data, dtype=np.uint8).astype(np.int32)
        toks = self.regex.findall(data)
        return np.fromiter(map(self.ids.__getitem__, toks), dtype=np.int32, count=len(toks))

    def decode(self, ids: Iterable[int] | np.ndarray) -> bytes:
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        return b"".join(map(self.table.__getitem__, ids))

    def greedy(self, data: bytes, exclude: bytes | None = None) -> list[int]:
        """Pure-Python greedy longest match for short strings, optionally as if `exclude` were no unit.

        Used to price a unit by what it replaces; it is also the reference the
        regex encoder is tested against.
        """
        out, i, n = [], 0, len(data)
        while i < n:
            node, best, j = self.trie, 1, i
            while j < n and data[j] in node:
                node = node[data[j]]
                j += 1
                if _END in node and (exclude is None or data[i:j] != exclude):
                    best = j - i
            out.append(self.ids[data[i : i + best]])
            i += best
        return out

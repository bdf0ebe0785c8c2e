"""Units as context: the causal unit parse of the text before each byte.

The canonical greedy parse (`units.py`) is left-to-right longest match, so the
unit covering byte i depends on bytes AFTER i: it cannot be a context for
predicting byte i. Its causal counterpart parses the prefix x[:i] from the
right: u1 = the longest unit that is a suffix of x[:i] (or the single byte
x[i-1] when no unit ends there), u2 = the same for x[:i - len(u1)], and so on.
For "... said Mr. Holm" with units "Mr. ", "Holm", " said" this gives
(u1, u2, u3) = ("Holm", "Mr. ", " said"): a context of whole units spanning
up to 3 x 32 bytes, cut where the codebook says words and phrases end.

The chain is computed for every position at once: for each length l the hash
of the l bytes before every position is compared with the set of unit suffixes
of length l (one searchsorted); positions whose l-suffix is no unit's suffix
leave the search, so it stops after a few lengths for most positions.
"""

from __future__ import annotations

import numpy as np

from nightshift.models.macro_unit.context import Stream, mix, string_suffix_hash, suffix_hashes
from nightshift.models.macro_unit.keys import U64
from nightshift.models.macro_unit.units import Codebook

NO_UNIT = U64(0)  # id of "no context here" (before the fragment start)


def _sorted(values: set[int]) -> np.ndarray:
    return np.array(sorted(values), dtype=U64)


def _member(table: np.ndarray, q: np.ndarray) -> np.ndarray:
    if len(table) == 0:
        return np.zeros(len(q), dtype=bool)
    j = np.minimum(np.searchsorted(table, q), len(table) - 1)
    return table[j] == q


class UnitParser:
    """Longest unit ending at each position, and chains of them (depth units back)."""

    def __init__(self, book: Codebook) -> None:
        self.book = book
        self.max_len = max((len(u) for u in book.units), default=0)
        suffixes: list[set[int]] = [set() for _ in range(self.max_len + 2)]  # l -> hashes of l-suffixes of units
        whole: list[set[int]] = [set() for _ in range(self.max_len + 2)]  # l -> hashes of units of length l
        for u in book.units:
            for k in range(1, len(u) + 1):
                suffixes[k].add(string_suffix_hash(u[len(u) - k :]))
            whole[len(u)].add(string_suffix_hash(u))
        self.suffixes = [_sorted(s) for s in suffixes]
        self.whole = [_sorted(s) for s in whole]

    def longest(self, s: Stream) -> tuple[np.ndarray, np.ndarray]:
        """(N,) id (a hash naming the unit's bytes; NO_UNIT at a fragment start) and length of u1."""
        n = len(s)
        length = np.minimum(s.pos, 1)  # the single byte before, where there is one
        ident = np.full(n, NO_UNIT, dtype=U64)
        active = np.ones(n, dtype=bool)
        for k, h in suffix_hashes(s, max(self.max_len, 1)):  # k: the suffix length
            if k == 1:
                ident = np.where(length == 1, h, NO_UNIT)
            active &= (s.pos >= k) & _member(self.suffixes[k], h)
            if not active.any():
                break
            if k >= 2:
                hit = active & _member(self.whole[k], h)
                length = np.where(hit, k, length)
                ident = np.where(hit, h, ident)
        return ident, length

    def chain(self, s: Stream, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """(depth, N) ids of u1..u_depth before each position (NO_UNIT past the fragment start), (N,) len(u1)."""
        ident, length = self.longest(s)
        ids = np.empty((depth, len(s)), dtype=U64)
        ids[0] = ident
        # u_{d+1} is the longest unit ending where u_d starts; at a fragment start length is 0 and the
        # id NO_UNIT, and the walk stays there (u_d never starts before its own fragment)
        at = np.arange(len(s)) - length  # (N,)
        for d in range(1, depth):
            ids[d] = ident[at]
            at = at - length[at]
        return ids, length


def chain_contexts(ids: np.ndarray, depths: tuple[int, ...], salt: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """{d: (N,) hash of (salt, u1..ud)}; salt is the fragment id for in-context counts, None for global ones."""
    h = np.full(ids.shape[1], U64(0xD1CE), dtype=U64)
    if salt is not None:
        h = mix(h, salt)
    out = {}
    for d in range(1, max(depths) + 1):
        h = mix(h, ids[d - 1].view(np.int64))
        if d in depths:
            out[d] = h
    return out

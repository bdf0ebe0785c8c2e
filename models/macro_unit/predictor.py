"""The family's next-byte distribution: the Kneser-Ney byte model, in-context counts and units, mixed.

Experts (each a distribution over the 256 bytes):

- `static`: the interpolated Kneser-Ney byte model (`byte_model.py`), order <= 7;
- `cache`: in-context counts (`cache.py`) over the last `horizon` bytes of the
  same document, for byte contexts of `orders` lengths (1..32): with k* the
  longest order whose context occurred before, the experts are c(h, b) / c(h)
  at k* and at 1, 2, 4 and 6 orders shorter (CACHE_BACKS);
- `units`: the causal unit parse (`unit_context.py`) as context: u1..ud chains
  counted over the training sample (global, d = 1..depth, smoothed towards the
  static expert with `unit_beta` pseudo-counts) and over the document so far
  (in-context, d = 2..depth).

The mixer (`mixer.py`) weights them by bucket: (k*, log2 of k*'s count) for
the cache, the length of u1 (which says whether the text before is inside a
word/phrase unit or just after one) for units. One mixer per set of switched-off
parts (`units`, `cache`) is fitted on the held-out training rows, so an
ablation scores the same trained state with its own best weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nightshift.models.macro_unit.byte_model import ByteModel
from nightshift.models.macro_unit.cache import GlobalCounts, InContextCounts
from nightshift.models.macro_unit.context import Stream, byte_contexts
from nightshift.models.macro_unit.mixer import Mixer, fit
from nightshift.models.macro_unit.unit_context import NO_UNIT, UnitParser, chain_contexts
from nightshift.models.macro_unit.units import Codebook

UNITS, CACHE = "units", "cache"
PARTS = (UNITS, CACHE)
CHUNK_BYTES = 1 << 21  # stream bytes handled at once (bounds the (orders, Q) count arrays)
CACHE_BACKS = (0, 1, 2, 4, 6)  # in-context experts: the longest order seen (k*) and these many orders below it
CACHE_BETA = 0.25  # pseudo-counts of the byte model inside each in-context expert (calibrates c = 1, 2)
_SB = 10  # radix of the surprise bucket
RECENT = 2048  # bytes over which the byte model's recent loss is averaged (<= horizon)
_CB, _UL = 8, 5  # radices of the count bucket (log2 c, 0..7) and the unit-length bucket (0..4)


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictorSettings:
    orders: tuple[int, ...]  # in-context byte orders, ascending
    horizon: int  # in-context bytes before a position that its counts may use (0: no cache)
    unit_depth: int  # units in the causal chain used as context
    unit_beta: float  # pseudo-counts of the static expert in the global unit-context expert
    mix_prior: float  # pseudo-positions pulling a bucket's weights towards its parent's


@dataclass(slots=True)
class Experts:
    """Expert probabilities of the queried bytes and the bucket features, for every part."""

    static: np.ndarray  # (Q,)
    cache: np.ndarray | None  # (len(CACHE_BACKS), Q)
    kstar: np.ndarray | None  # (Q,) 0 = no order seen, else 1 + index into orders
    count_bucket: np.ndarray | None  # (Q,)
    units: np.ndarray | None  # (U, Q)
    unit_len: np.ndarray | None  # (Q,)
    surprise: np.ndarray | None = None  # (Q,) bucket of the byte model's recent loss in this document
    order_radix: int = 1  # values of kstar: len(orders) + 1
    n_global: int = 0  # leading rows of `units` that are global (the rest are in-context)

    def select(self, off: frozenset[str]) -> tuple[np.ndarray, list[np.ndarray], tuple[int, ...]]:
        """(E, Q) experts, their bucket features and radices, for the parts that are on."""
        rows, feats, radices = [self.static[None]], [], []
        if self.surprise is not None and (CACHE not in off or UNITS not in off):
            feats.append(self.surprise)
            radices.append(_SB)
        if CACHE not in off and self.cache is not None:
            rows.append(self.cache)
            feats += [self.kstar, self.count_bucket]
            radices += [self.order_radix, _CB]
        if UNITS not in off and self.units is not None:
            rows.append(self.units if CACHE not in off else self.units[: self.n_global])
            feats.append(self.unit_len)
            radices.append(_UL)
        return np.concatenate(rows), feats, tuple(radices)


class Predictor:
    """Scoring view over a trained state: built from the byte model, codebook, sample and held-out rows."""

    def __init__(self, byte_model: ByteModel, book: Codebook, sample: list[bytes], heldout: list[bytes],
                 s: PredictorSettings, max_order: int) -> None:
        self.byte_model = byte_model
        self.s = s
        self.max_order = max_order
        self.parser = UnitParser(book) if len(book) else None
        self.depths = tuple(range(1, s.unit_depth + 1))
        self.global_units: dict[int, GlobalCounts] = {}
        if self.parser is not None and sample:
            st = Stream.of(sample)
            ids, _ = self.parser.chain(st, s.unit_depth)
            for d, h in chain_contexts(ids, self.depths).items():
                self.global_units[d] = GlobalCounts(h, ids[d - 1] != NO_UNIT, st.x)
        self.mixers: dict[frozenset[str], Mixer] = {}
        self.heldout_bits: dict[frozenset[str], float] = {}
        if heldout:
            hs = Stream.of(heldout)
            q = np.arange(len(hs))
            p_static = np.exp(byte_model.logp(hs.x, np.minimum(hs.pos, max_order)))
            ex = self.experts(hs, q, hs.x, p_static)
            for off in _subsets():
                P, feats, radices = ex.select(off)
                m = fit(P, feats, radices, prior=s.mix_prior)
                self.mixers[off] = m
                p = m(P, Mixer.bucket(feats, radices)) if radices else P[0]
                self.heldout_bits[off] = float(-np.log2(p).sum() / len(hs))

    @property
    def nbytes(self) -> int:
        return sum(g.nbytes for g in self.global_units.values()) + sum(m.nbytes for m in self.mixers.values())

    def experts(self, st: Stream, q: np.ndarray, b: np.ndarray, p_static: np.ndarray) -> Experts:
        """Every expert's probability of byte b[i] after the text before st position q[i]."""
        s = self.s
        ex = Experts(static=p_static, cache=None, kstar=None, count_bucket=None, units=None, unit_len=None,
                     order_radix=len(s.orders) + 1)
        ex.surprise = self._surprise(st, q)
        if s.horizon > 0 and s.orders:
            C = np.zeros((len(s.orders), len(q)), dtype=np.int32)
            CB = np.zeros_like(C)
            for i, (k, h) in enumerate(byte_contexts(st, s.orders).items()):
                c, cb = InContextCounts(h, st.pos >= k, st.x).query(q, b, s.horizon, k)
                C[i], CB[i] = c, cb
            seen = C > 0
            top = np.where(seen.any(axis=0), len(s.orders) - 1 - np.argmax(seen[::-1], axis=0), -1)  # (Q,)
            cols = np.arange(len(q))
            rows = []
            for back in CACHE_BACKS:
                k = np.clip(top - back, 0, None)
                c, cb = C[k, cols], CB[k, cols]
                est = (cb + CACHE_BETA * p_static) / (c + CACHE_BETA) if CACHE_BETA else cb / np.maximum(c, 1)
                rows.append(np.where((top - back >= 0) & (c > 0), est, p_static))
            ex.cache = np.stack(rows)
            ex.kstar = top + 1
            ex.count_bucket = np.log2(C[np.clip(top, 0, None), cols] + 1.0).astype(np.int64)
        if self.parser is not None:
            ids, length = self.parser.chain(st, s.unit_depth)
            rows = []
            for d, h in chain_contexts(ids[:, q], self.depths).items():
                g = self.global_units.get(d)
                c, cb = g.query(h, b) if g is not None else (np.zeros(len(q)), np.zeros(len(q)))
                rows.append((cb + s.unit_beta * p_static) / (c + s.unit_beta))
            ex.n_global = len(rows)
            if s.horizon > 0:
                for d, h in chain_contexts(ids, self.depths, salt=st.frag).items():
                    if d < 2:
                        continue
                    span = d * max(self.parser.max_len, 1)  # a chain of d units reaches back at most this far
                    c, cb = InContextCounts(h, ids[d - 1] != NO_UNIT, st.x).query(q, b, s.horizon, span)
                    rows.append(np.where(c > 0, cb / np.maximum(c, 1), p_static))
            ex.units = np.stack(rows)
            ex.unit_len = length[q]
        return ex

    def _surprise(self, st: Stream, q: np.ndarray) -> np.ndarray:
        """Bucket of the byte model's mean loss over the (up to) RECENT bytes before q in q's document.

        A document unlike the training text (new names, another style) shows up as
        a high recent loss, and there the in-context experts deserve more weight:
        held-out training rows come from the training books, so without this
        feature the mixer would learn how much to trust the byte model on text it
        knows, not on a new book.
        """
        bits = -self.byte_model.logp(st.x, np.minimum(st.pos, self.max_order)) / np.log(2)  # (N,)
        csum = np.concatenate(([0.0], np.cumsum(bits)))
        # the byte model reads max_order bytes before each of those bytes: all inside the horizon
        n = np.minimum(np.minimum(st.pos[q], RECENT), max(self.s.horizon - self.max_order, 0))
        mean = (csum[q] - csum[q - n]) / np.maximum(n, 1)
        b = 1 + np.clip(((mean - 1.0) * 3).astype(np.int64), 0, _SB - 2)
        return np.where(n >= 64, b, 0)

    def prob(self, st: Stream, q: np.ndarray, b: np.ndarray, p_static: np.ndarray, off: frozenset[str]) -> np.ndarray:
        """(Q,) P(b[i] | text before q[i]) with the parts in `off` switched off."""
        off = frozenset(off) & frozenset(PARTS)
        ex = self.experts(st, q, b, p_static)
        P, feats, radices = ex.select(off)
        if not radices:
            return P[0]
        mixer = self.mixers.get(off) or Mixer.uniform(radices, len(P))
        return mixer(P, Mixer.bucket(feats, radices))


def _subsets() -> list[frozenset[str]]:
    return [frozenset(), frozenset({UNITS}), frozenset({CACHE}), frozenset(PARTS)]

"""MDL consolidation: promote and prune macro-units by the savings of an actual re-parse.

Description length (DL) of a text under a codebook = the bits of its greedy
parse under a unigram code over (256 bytes + units), plus the codebook itself:
8 bits per unit byte and a length byte, and 0.5 log2 N bits for the unit's code
parameter (the usual MDL price of a frequency estimated from N tokens).

The original model priced a candidate from raw, overlapping substring counts
(`gain = (8fL - (8L+8) - 16f) / 8fL`), which rewards every shifted copy of a
frequent phrase ("Once upon a time", "nce upon a time,", ...). Here:

1. candidates (a bounded map, `max_candidates`) come from the n-gram tables
   (substring counts, scaled to the sample) and from adjacent token pairs of
   the current parse of the sample (so units grow past the n-gram order,
   BPE-like); each is priced by what it would replace in the current parse;
2. the best `candidates_per_round` join the codebook and the sample is
   RE-PARSED; each unit's savings are then measured on that parse (uses x bits
   saved per use, minus its codebook bits); units that do not pay for
   themselves are dropped (old units too: that is the pruning) and the sample
   is parsed again: the round's gain is the exact difference in DL;
3. the round is kept only if it lowers the DL of the held-out training bytes
   (coded with the frequencies learned on the sample); otherwise it is rolled
   back and consolidation stops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nightshift.models.macro_unit.counts import CountTable
from nightshift.models.macro_unit.keys import key_to_bytes
from nightshift.models.macro_unit.units import Codebook

ALPHA = 0.5  # additive smoothing of the unigram code when it codes held-out text


@dataclass(frozen=True, slots=True, kw_only=True)
class MdlSettings:
    min_unit_len: int
    max_unit_len: int
    max_units: int
    min_frequency: int  # uses in the sample parse a NEW unit needs
    prune_threshold: int  # uses in the sample parse an existing unit needs to stay
    min_gain_bits: float
    candidates_per_round: int
    max_candidates: int
    promotion_rounds: int


@dataclass(slots=True)
class Parse:
    counts: np.ndarray  # (V,) uses of each symbol
    pair_keys: np.ndarray  # (P,) adjacent symbol pairs a * V + b within fragments
    pair_counts: np.ndarray  # (P,)
    n_bytes: int

    @property
    def n_tokens(self) -> int:
        return int(self.counts.sum())


def parse(book: Codebook, fragments: list[bytes], *, pairs: bool = False) -> Parse:
    """Greedy re-parse of every fragment; symbol counts (and adjacent pair counts)."""
    V = book.vocab_size
    encoded = [book.encode(f) for f in fragments]
    ids = np.concatenate(encoded).astype(np.int64) if encoded else np.zeros(0, np.int64)
    counts = np.bincount(ids, minlength=V)
    pk = pc = np.zeros(0, np.int64)
    if pairs and len(ids) > 1:
        keys = ids[:-1] * V + ids[1:]
        ends = np.cumsum([len(e) for e in encoded])[:-1] - 1  # a pair may not cross fragments
        ok = np.ones(len(keys), dtype=bool)
        ok[ends[(ends >= 0) & (ends < len(keys))]] = False
        pk, pc = np.unique(keys[ok], return_counts=True)
    return Parse(counts, pk, pc, sum(map(len, fragments)))


def code_lengths(counts: np.ndarray) -> np.ndarray:
    """Bits per symbol of the smoothed unigram code estimated from `counts`."""
    return -np.log2((counts + ALPHA) / (counts.sum() + ALPHA * len(counts)))


def unit_bits(unit: bytes, n_tokens: int) -> float:
    return 8.0 * (len(unit) + 1) + 0.5 * math.log2(max(n_tokens, 2))


def description_length(book: Codebook, p: Parse) -> float:
    """Bits: the sample under its own (maximum-likelihood) unigram code, plus the codebook."""
    n = p.counts[p.counts > 0].astype(np.float64)
    data = float((n * np.log2(n.sum() / n)).sum()) if len(n) else 0.0
    return data + sum(unit_bits(u, p.n_tokens) for u in book.units)


def heldout_bits(train: Parse, heldout: Parse) -> float:
    return float((heldout.counts * code_lengths(train.counts)).sum())


def table_proposals(tables: list[CountTable], scale: float, s: MdlSettings) -> dict[bytes, float]:
    """The most frequent substrings in the n-gram tables (an order-k key is a (k+1)-byte substring)."""
    orders = [k for k in range(1, len(tables)) if s.min_unit_len <= k + 1 <= s.max_unit_len]
    out: dict[bytes, float] = {}
    per_order = max(1, s.max_candidates // max(1, len(orders)))
    for k in orders:
        t = tables[k]
        if len(t) == 0:
            continue
        m = min(per_order, len(t))
        top = np.argpartition(t.counts, len(t) - m)[len(t) - m :]
        for key, c in zip(t.keys[top].tolist(), t.counts[top].tolist(), strict=True):
            out[key_to_bytes(key, k)] = c * scale
    return out


def candidates(book: Codebook, p: Parse, proposals: dict[bytes, float], s: MdlSettings) -> list[bytes]:
    """Price every proposal (plus the parse's adjacent pairs) by what it replaces; the best first."""
    V = book.vocab_size
    pool = dict(proposals)
    if len(p.pair_keys):
        top = np.argsort(-p.pair_counts, kind="stable")[: s.max_candidates]
        for key, c in zip(p.pair_keys[top].tolist(), p.pair_counts[top].tolist(), strict=True):
            u = book.table[key // V] + book.table[key % V]
            pool[u] = max(pool.get(u, 0.0), float(c))
    pool = {u: f for u, f in pool.items()
            if s.min_unit_len <= len(u) <= s.max_unit_len and u not in book.ids and f >= s.min_frequency}
    bounded = sorted(pool.items(), key=lambda kv: (-kv[1] * (len(kv[0]) - 1), kv[0]))[: s.max_candidates]
    cost = code_lengths(p.counts)
    n_tok = max(p.n_tokens, 1)
    priced = []
    for u, f in bounded:
        sub = book.greedy(u)
        gain = f * (float(cost[sub].sum()) + math.log2(f / n_tok)) - unit_bits(u, n_tok)
        if gain > s.min_gain_bits:
            priced.append((-gain, u))
    priced.sort()
    return [u for _, u in priced[: s.candidates_per_round]]


def select(trial: Codebook, p: Parse, new: set[bytes], s: MdlSettings) -> list[bytes]:
    """Units that pay for themselves on the re-parse `p`; the rest (new or old) are dropped."""
    cost = code_lengths(p.counts)
    kept = []
    for j, u in enumerate(trial.units):
        uses = int(p.counts[256 + j])
        if uses < (s.min_frequency if u in new else s.prune_threshold):
            continue
        replaced = float(cost[trial.greedy(u, exclude=u)].sum())
        savings = uses * (replaced - float(cost[256 + j])) - unit_bits(u, p.n_tokens)
        if savings > s.min_gain_bits:
            kept.append((savings, j, u))
    if len(kept) > s.max_units:
        kept = sorted(kept, key=lambda t: (-t[0], t[1]))[: s.max_units]
        kept.sort(key=lambda t: t[1])
    return [u for _, _, u in kept]


def consolidate(
    book: Codebook, sample: list[bytes], heldout: list[bytes], proposals: dict[bytes, float], s: MdlSettings
) -> tuple[Codebook, dict[str, float]]:
    """Promotion rounds with held-out rollback (module docstring); returns the new codebook and metrics."""
    p0 = parse(book, sample, pairs=True)
    dl0 = description_length(book, p0)
    h_parse = parse(book, heldout)
    h0 = heldout_bits(p0, h_parse)
    h_start = h0
    promoted = pruned = rolled_back = rounds = 0
    for _ in range(s.promotion_rounds if p0.n_bytes else 0):
        new = candidates(book, p0, proposals, s)
        trial = Codebook([*book.units, *new])
        kept = select(trial, parse(trial, sample), set(new), s)
        if set(kept) == set(book.units):
            break
        nxt = Codebook(kept)
        p1 = parse(nxt, sample, pairs=True)
        dl1 = description_length(nxt, p1)
        if dl1 >= dl0:
            break  # the re-parse shows no real saving on the sample
        h1_parse = parse(nxt, heldout)
        h1 = heldout_bits(p1, h1_parse)
        rounds += 1
        if h_parse.n_bytes and h1 >= h0:
            rolled_back += 1  # helps the sample but not held-out bytes: keep the old codebook
            break
        promoted += len(set(kept) - set(book.units))
        pruned += len(set(book.units) - set(kept))
        book, p0, dl0, h0, h_parse = nxt, p1, dl1, h1, h1_parse
    ref = h_parse if h_parse.n_bytes else p0
    units = book.units
    return book, {
        "units": float(len(units)),
        "mean_unit_len": float(np.mean([len(u) for u in units])) if units else 0.0,
        "compression_ratio": ref.n_bytes / ref.n_tokens if ref.n_tokens else 1.0,
        "heldout_dl_bpb": h0 / h_parse.n_bytes if h_parse.n_bytes else 0.0,
        "heldout_dl_bpb_before": h_start / h_parse.n_bytes if h_parse.n_bytes else 0.0,
        "sample_dl_bpb": dl0 / p0.n_bytes if p0.n_bytes else 0.0,
        "promoted": float(promoted),
        "pruned_units": float(pruned),
        "rolled_back": float(rolled_back),
        "rounds": float(rounds),
    }

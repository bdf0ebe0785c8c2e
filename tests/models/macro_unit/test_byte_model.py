"""Byte n-gram counts and the Kneser-Ney byte model: exact counts, bounded tables, P sums to 1."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from nightshift.models.macro_unit.byte_model import ByteModel
from nightshift.models.macro_unit.counts import NgramCounts
from nightshift.models.macro_unit.keys import key_to_bytes


def _fragments_text(rng: np.random.Generator, n_frags: int = 12) -> list[bytes]:
    alphabet = np.frombuffer(b"abcde \n", dtype=np.uint8)
    return [alphabet[rng.integers(0, len(alphabet), int(rng.integers(1, 120)))].tobytes() for _ in range(n_frags)]


def _count(frags: list[bytes], order: int, cap: int = 10**9, chunks: int = 1) -> NgramCounts:
    """Count fragments, split into `chunks` count() calls at fragment boundaries."""
    counts = NgramCounts(order, cap, max(1, int(cap * 0.75)))
    for group in np.array_split(np.arange(len(frags)), chunks):
        part = [frags[i] for i in group]
        if part:
            x = np.frombuffer(b"".join(part), dtype=np.uint8)
            avail = np.concatenate([np.minimum(np.arange(len(f)), order) for f in part]).astype(np.int8)
            counts.count(x, avail)
    return counts


def _brute(frags: list[bytes], k: int) -> Counter:
    """(k+1)-byte substrings that lie inside one fragment."""
    return Counter(f[i - k : i + 1] for f in frags for i in range(k, len(f)))


@pytest.mark.parametrize("order", [0, 1, 3, 7])
def test_counts_equal_brute_force_and_never_cross_fragments(order: int) -> None:
    frags = _fragments_text(np.random.default_rng(order))
    counts = _count(frags, order)
    for k, table in enumerate(counts.tables):
        got = {key_to_bytes(key, k): c for key, c in zip(table.keys.tolist(), table.counts.tolist(), strict=True)}
        assert got == dict(_brute(frags, k))


def test_counting_in_chunks_gives_the_same_tables() -> None:
    frags = _fragments_text(np.random.default_rng(7), 30)
    one, many = _count(frags, 5), _count(frags, 5, chunks=9)
    for a, b in zip(one.tables, many.tables, strict=True):
        assert (a.keys == b.keys).all() and (a.counts == b.counts).all()


def test_a_chunk_start_is_a_fragment_start() -> None:
    """Bytes before a chunk are not there: a context must not be read from the zero padding."""
    text = b"abcabcabcabc"
    counts = NgramCounts(3, 10**6, 10**6)
    x = np.frombuffer(text, dtype=np.uint8)
    counts.count(x[6:], np.full(6, 3, dtype=np.int8))  # claims full context at the chunk start
    table = counts.tables[3]
    got = {key_to_bytes(k, 3): c for k, c in zip(table.keys.tolist(), table.counts.tolist(), strict=True)}
    assert got == dict(_brute([text[6:]], 3))


def test_tables_stay_under_their_cap_and_keep_the_highest_counts() -> None:
    rng = np.random.default_rng(3)
    frags = [rng.integers(0, 256, 500).astype(np.uint8).tobytes() for _ in range(40)] + [b"the cat " * 200]
    counts = _count(frags, 4, cap=3000, chunks=10)
    for k, table in enumerate(counts.tables):
        assert len(table) <= 3000
        if k >= 2:  # random bytes make these tables overflow; the frequent phrase must survive
            kept = {key_to_bytes(key, k) for key in table.keys.tolist()}
            assert b"the cat "[: k + 1] in kept
    assert counts.pruned > 0


def _reference_kn(frags: list[bytes], order: int, d: float):
    """Textbook interpolated Kneser-Ney with one discount, written with dicts (independent of the numpy code)."""
    raw = [_brute(frags, k) for k in range(order + 1)]
    cont = [Counter() for _ in range(order + 1)]
    for k in range(order):
        for gram in raw[k + 1]:
            cont[k][gram[1:]] += 1
    eff = [cont[k] if k < order else raw[k] for k in range(order + 1)]

    def p(ctx: bytes, b: int) -> float:
        prob = 1 / 256
        for k in range(order + 1):
            if len(ctx) < k:
                break
            h = ctx[len(ctx) - k :] if k else b""
            grams = {g: c for g, c in eff[k].items() if g[:-1] == h}
            total = sum(grams.values())
            if total == 0:
                continue
            c = grams.get(h + bytes([b]), 0)
            prob = (max(c - d, 0) + d * len(grams) * prob) / total
        return prob

    return p


def test_matches_a_textbook_kneser_ney() -> None:
    frags = _fragments_text(np.random.default_rng(11), 8)
    order, d = 2, 0.7
    model = ByteModel(_count(frags, order).tables, smoothing="kneser_ney", discounts=(d,))
    ref = _reference_kn(frags, order, d)
    text = b"abcab dexyz\nabc"
    avail = np.minimum(np.arange(len(text)), order)
    got = model.logp(np.frombuffer(text, dtype=np.uint8), avail)
    want = [math.log(ref(text[max(0, i - order) : i], text[i])) for i in range(len(text))]
    assert np.allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("smoothing", ["kneser_ney", "absolute"])
@pytest.mark.parametrize("discounts", [(), (0.9,), (0.3, 1.2, 2.9)])
def test_probabilities_sum_to_one_in_every_context(smoothing: str, discounts: tuple[float, ...], pg19_texts) -> None:
    """Seen and unseen contexts, every order of back-off, document starts (avail < order)."""
    order = 7
    text = pg19_texts["train"][0].encode()[:300_000]
    counts = _count([text[i : i + 4096] for i in range(0, len(text), 4096)], order)
    model = ByteModel(counts.tables, smoothing=smoothing, discounts=discounts)
    rng = np.random.default_rng(0)
    seen = np.frombuffer(text[100_000:102_000], dtype=np.uint8)
    unseen = rng.integers(0, 256, 2000).astype(np.uint8)
    mixed = np.frombuffer(b"the \xff\x00qzx of the \x80ing", dtype=np.uint8)
    for x in (seen, unseen, mixed):
        avail = np.minimum(np.arange(len(x)) % 11, order)  # many context lengths, fragment starts included
        dist = model.distribution(x, avail)  # (N, 256)
        assert np.abs(dist.sum(axis=1) - 1).max() < 1e-6
        assert (dist > 0).all()
        # the per-byte path agrees with the full distribution
        assert np.allclose(model.logp(x, avail), np.log(dist[np.arange(len(x)), x]), atol=1e-12)


def test_kneser_ney_beats_absolute_discounting_on_held_out_text(pg19_texts) -> None:
    text = pg19_texts["train"][1].encode()[:400_000]
    val = np.frombuffer(pg19_texts["validation"][0].encode()[:20_000], dtype=np.uint8)
    counts = _count([text[i : i + 2048] for i in range(0, len(text), 2048)], 5)
    avail = np.minimum(np.arange(len(val)), 5)
    kn = -ByteModel(counts.tables, smoothing="kneser_ney").logp(val, avail).mean()
    ad = -ByteModel(counts.tables, smoothing="absolute").logp(val, avail).mean()
    assert kn < ad

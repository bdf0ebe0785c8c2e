"""The unit codebook: greedy longest match with byte fallback, exactly reversible."""

from __future__ import annotations

import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nightshift.models.macro_unit.units import Codebook

units_st = st.lists(st.binary(min_size=2, max_size=12), max_size=40, unique=True)


@settings(max_examples=300, deadline=None)
@given(units=units_st, data=st.binary(max_size=400))
def test_decode_inverts_encode_for_any_bytes_and_any_units(units: list[bytes], data: bytes) -> None:
    book = Codebook(units)
    ids = book.encode(data)
    assert book.decode(ids) == data
    assert ids.dtype == np.int32 and (ids >= 0).all() and (ids < book.vocab_size).all()


@settings(max_examples=200, deadline=None)
@given(units=units_st, data=st.binary(max_size=300))
def test_regex_encoder_is_greedy_longest_match(units: list[bytes], data: bytes) -> None:
    """The compiled trie regex and a plain Python trie walk give the same parse."""
    book = Codebook(units)
    assert book.encode(data).tolist() == book.greedy(data)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=1, max_size=200), seed=st.integers(0, 2**32 - 1))
def test_units_drawn_from_the_text_round_trip(data: bytes, seed: int) -> None:
    """Units that actually occur (so matches and overlaps really happen), with regex metacharacters."""
    rng = np.random.default_rng(seed)
    text = data + b".*+?()[]{}|\\^$\n\x00" + data
    units = set()
    for _ in range(30):
        i = int(rng.integers(0, len(text) - 1))
        units.add(text[i : i + int(rng.integers(2, 9))])
    book = Codebook(sorted(u for u in units if len(u) >= 2))
    ids = book.encode(text)
    assert book.decode(ids) == text
    assert ids.tolist() == book.greedy(text)


def test_longest_unit_wins_and_bytes_fill_gaps() -> None:
    book = Codebook([b"ab", b"abc", b"abcd", b"cd"])
    assert book.decode(book.encode(b"abcdxabcab")) == b"abcdxabcab"
    ids = book.encode(b"abcdxabcab").tolist()
    table = book.table
    assert [table[i] for i in ids] == [b"abcd", b"x", b"abc", b"ab"]


def test_backtracks_to_the_longest_unit_that_ends_on_the_path() -> None:
    """'abcX': no 'abcd' here, so the match falls back to 'ab' (a unit), not 'abc' (only a prefix)."""
    book = Codebook([b"ab", b"abcd"])
    assert [book.table[i] for i in book.encode(b"abcX")] == [b"ab", b"c", b"X"]


def test_greedy_can_price_a_unit_without_itself() -> None:
    book = Codebook([b"th", b"the", b"he"])
    assert [book.table[i] for i in book.greedy(b"the", exclude=b"the")] == [b"th", b"e"]


def test_bad_units_are_refused() -> None:
    for units in ([b"a"], [b"ab", b"ab"]):
        try:
            Codebook(units)
        except ValueError as exc:
            assert "length >= 2" in str(exc)
        else:
            raise AssertionError(f"{units} accepted")


def test_encoder_is_one_regex_not_a_python_loop() -> None:
    book = Codebook([b"the ", b"and "])
    assert isinstance(book.regex, re.Pattern)
    assert book.encode(b"").tolist() == []

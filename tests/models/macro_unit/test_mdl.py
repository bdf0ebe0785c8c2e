"""MDL consolidation: promotions measured on a re-parse, rolled back when held-out bytes get no shorter."""

from __future__ import annotations

import numpy as np
import torch

from nightshift.models.macro_unit import Config
from nightshift.models.macro_unit.mdl import (
    MdlSettings,
    consolidate,
    description_length,
    parse,
)
from nightshift.models.macro_unit.tokens import row_priorities
from nightshift.models.macro_unit.units import Codebook
from nightshift.models.protocol import SleepContext, Vocab
from tests.models.macro_unit.helpers import SMALL, train

ROW = 257
EVERY = 2  # every other row (by content hash) is held out


def _rows_of(make, want_heldout: bool, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Draw rows from `make` until n of them land on the wanted side of the held-out split."""
    out = []
    while len(out) < n:
        row = make(rng)
        held = bool(row_priorities(row[None])[0] % np.uint64(EVERY) == 0)
        if held == want_heldout:
            out.append(row)
    return out


def _repetitive(rng: np.random.Generator) -> np.ndarray:
    """'abc' repeated, with a few random letters: units like 'abc', 'abcabc' pay off here."""
    row = np.frombuffer((b"abc" * ROW)[:ROW], dtype=np.uint8).astype(np.int64).copy()
    row[rng.integers(0, ROW, 8)] = rng.integers(97, 100, 8)
    return row


def _shuffled(rng: np.random.Generator) -> np.ndarray:
    """The same letters in random order: the units learned above are useless here."""
    return rng.integers(97, 100, ROW).astype(np.int64)


def _model(**overrides):
    cfg = {**SMALL, "train_seq_len": ROW - 1, "holdout_every": EVERY, "min_frequency": 2, **overrides}
    return Config(**cfg).build(Vocab.bytes_vocab())


def test_a_promotion_that_does_not_shorten_held_out_bytes_is_rolled_back() -> None:
    rng = np.random.default_rng(0)
    sample = _rows_of(_repetitive, False, 40, rng)
    for heldout_kind, expect_rollback in ((_shuffled, True), (_repetitive, False)):
        model = _model()
        model.observe(torch.from_numpy(np.stack(sample + _rows_of(heldout_kind, True, 20, rng))))
        m = model.sleep(SleepContext(step=1))
        if expect_rollback:
            assert m["rolled_back"] == 1 and m["units"] == 0 and len(model.book) == 0
            assert m["heldout_dl_bpb"] == m["heldout_dl_bpb_before"]
        else:  # the same sample with held-out text like it: the promotion stands
            assert m["rolled_back"] == 0 and m["units"] > 0
            assert m["heldout_dl_bpb"] < m["heldout_dl_bpb_before"]


def test_sleep_on_english_lowers_held_out_description_length(pg19_texts) -> None:
    model = _model(train_seq_len=1024, holdout_every=16, min_frequency=3, max_units=300)
    train(model, pg19_texts["train"][6].encode()[:400_000])
    history = [model.sleep(SleepContext(step=s)) for s in range(2)]
    first, second = history
    assert first["units"] > 0 and first["rolled_back"] == 0
    assert first["heldout_dl_bpb"] < first["heldout_dl_bpb_before"] < 8.0
    assert second["heldout_dl_bpb"] <= first["heldout_dl_bpb"]
    assert 0 < second["units"] <= 300 and second["mean_unit_len"] >= 2 and second["compression_ratio"] > 1.5
    text = pg19_texts["validation"][0].encode()[:20_000]
    ids = model.encode(text)
    assert model.decode(ids) == text and len(ids) < len(text) / 1.5


def test_promotion_gain_is_the_exact_change_in_description_length() -> None:
    """The codebook consolidate() returns has a lower DL on the sample than the one it started from."""
    rng = np.random.default_rng(1)
    words = [b"the ", b"and ", b"of ", b"to ", b"a ", b"in ", b"that ", b"was "]
    sample = [b"".join(words[i] for i in rng.integers(0, len(words), 300)) for _ in range(10)]
    heldout = [b"".join(words[i] for i in rng.integers(0, len(words), 300)) for _ in range(3)]
    s = MdlSettings(min_unit_len=2, max_unit_len=16, max_units=100, min_frequency=3, prune_threshold=2,
                    min_gain_bits=0.0, candidates_per_round=16, max_candidates=200, promotion_rounds=3)
    book, m = consolidate(Codebook(), sample, heldout, {}, s)
    before = description_length(Codebook(), parse(Codebook(), sample))
    after = description_length(book, parse(book, sample))
    assert after < before
    assert abs(m["sample_dl_bpb"] * sum(map(len, sample)) - after) < 1e-6 * after
    assert m["promoted"] - m["pruned_units"] == len(book) > 0 and m["compression_ratio"] > 2


def test_shifted_copies_of_one_phrase_do_not_all_survive() -> None:
    """The raw-count gain of the original keeps 'nce upon a time', 'ce upon a time,' ...; a re-parse does not."""
    rng = np.random.default_rng(2)
    filler = [b"x", b"y", b"z", b" "]
    frags = []
    for _ in range(30):
        parts = []
        for _ in range(12):
            parts.append(b"Once upon a time, ")
            parts += [filler[i] for i in rng.integers(0, 4, int(rng.integers(1, 6)))]
        frags.append(b"".join(parts))
    phrase = b"Once upon a time, "
    proposals = {phrase[i:j]: 300.0 for i in range(len(phrase)) for j in range(i + 8, len(phrase) + 1)}
    s = MdlSettings(min_unit_len=2, max_unit_len=32, max_units=100, min_frequency=3, prune_threshold=2,
                    min_gain_bits=0.0, candidates_per_round=64, max_candidates=500, promotion_rounds=3)
    book, _ = consolidate(Codebook(), frags[:24], frags[24:], proposals, s)
    long_pieces = [u for u in book.units if len(u) >= 8 and u in phrase]
    assert len(proposals) > 50 and long_pieces == [phrase]

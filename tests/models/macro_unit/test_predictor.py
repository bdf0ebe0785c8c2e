"""Units and in-context counts take part in prediction: normalised, causal, ablatable, checked against brute force."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nightshift.models.macro_unit.cache import InContextCounts
from nightshift.models.macro_unit.context import Stream, byte_contexts
from nightshift.models.macro_unit.mixer import Mixer, fit
from nightshift.models.macro_unit.unit_context import NO_UNIT, UnitParser
from nightshift.models.macro_unit.units import Codebook
from nightshift.models.protocol import ablated
from tests.models.macro_unit.helpers import bits_per_byte

ABLATIONS = ((), ("units",), ("cache",), ("units", "cache"))


def _brute_chain(book: Codebook, prefix: bytes, depth: int) -> list[bytes | None]:
    """Parse the prefix from the right: each step the longest unit that is a suffix, else one byte."""
    out, end = [], len(prefix)
    for _ in range(depth):
        if end == 0:
            out.append(None)
            continue
        best = prefix[end - 1 : end]
        for u in book.units:
            if len(u) > len(best) and len(u) <= end and prefix[end - len(u) : end] == u:
                best = u
        out.append(best)
        end -= len(best)
    return out


@settings(max_examples=60, deadline=None)
@given(units=st.lists(st.sampled_from([b"ab", b"abc", b"bca", b"ca", b"cab", b"aab", b"bb", b"abca"]), max_size=6,
                      unique=True),
       frags=st.lists(st.binary(min_size=0, max_size=40).map(lambda b: bytes(97 + x % 3 for x in b)), min_size=1,
                      max_size=4))
def test_unit_chain_is_the_backward_longest_suffix_parse(units: list[bytes], frags: list[bytes]) -> None:
    book = Codebook(units)
    s = Stream.of(frags)
    ids, length = UnitParser(book).chain(s, 3)
    starts = np.cumsum([0] + [len(f) for f in frags])
    names: dict[int, bytes] = {}
    for f, frag in enumerate(frags):
        for i in range(len(frag)):
            want = _brute_chain(book, frag[:i], 3)
            got = ids[:, starts[f] + i].tolist()
            assert length[starts[f] + i] == (len(want[0]) if want[0] else 0)
            for w, g in zip(want, got, strict=True):
                assert (w is None) == (g == int(NO_UNIT))
                if w is not None:  # one id per byte string, the same everywhere
                    assert names.setdefault(g, w) == w


def test_in_context_counts_equal_brute_force_within_the_horizon() -> None:
    rng = np.random.default_rng(0)
    frags = [bytes(rng.choice(list(b"ab c"), int(n)).tolist()) for n in rng.integers(0, 300, 5)]
    s = Stream.of(frags)
    k, horizon = 3, 50
    h = byte_contexts(s, (k,))[k]
    counts = InContextCounts(h, s.pos >= k, s.x)
    q = np.arange(len(s))
    b = rng.integers(97, 100, len(s)).astype(np.uint8)
    c, cb = counts.query(q, b, horizon, k)
    for i in range(len(s)):
        if s.pos[i] < k:
            assert c[i] == 0
            continue
        f, p = s.frag[i], s.pos[i]
        ctx = s.x[i - k : i].tobytes()
        prior = [j for j in range(max(i - horizon + k, i - p + k), i) if s.x[j - k : j].tobytes() == ctx]
        assert c[i] == len(prior) and cb[i] == sum(s.x[j] == b[i] for j in prior), (i, f)


def test_mixer_weights_fitted_by_em_beat_uniform_and_sum_to_one() -> None:
    rng = np.random.default_rng(1)
    n = 4000
    feat = rng.integers(0, 3, n)
    good = np.where(feat == 0, 0.9, 0.05)  # expert 0 is right in bucket 0, expert 1 elsewhere
    P = np.stack([good, 0.95 - good])
    m = fit(P, [feat], (3,))
    assert np.allclose(m.weights.sum(axis=1), 1)
    b = Mixer.bucket([feat], (3,))
    assert np.log(m(P, b)).sum() > np.log(Mixer.uniform((3,), 2)(P, b)).sum() + 100
    assert m.weights[0, 0] > 0.9 and m.weights[1, 1] > 0.9


def test_every_ablation_is_a_distribution_over_all_257_ids(trained, pg19_texts) -> None:
    text = pg19_texts["validation"][0].encode()[3000:3300]
    tokens = torch.tensor([[*text[:150], 256, *text[150:]]])
    outs = {}
    for parts in ABLATIONS:
        with ablated(trained, parts):
            lp = trained.log_probs(tokens).double()  # (1, T, 257)
            assert torch.logsumexp(lp, dim=-1).abs().max() < 1e-6
            want = lp[:, :-1].gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
            assert torch.allclose(trained.score(tokens).double(), want, atol=1e-5)
            outs[parts] = lp
    assert not torch.allclose(outs[()], outs[("units",)])  # units change what is predicted
    assert not torch.allclose(outs[()], outs[("cache",)])


def test_units_and_in_context_counts_lower_bits_on_text_with_repeats(trained, pg19_texts) -> None:
    """A document that repeats its own phrases: switching either part off costs bits."""
    book = pg19_texts["validation"][1].encode()
    doc = book[:2000] + book[2000:2300] * 4  # 300 bytes said four times, within the 512-byte horizon
    bpb = {}
    for parts in ABLATIONS:
        with ablated(trained, parts):
            bpb[parts] = bits_per_byte(trained, [doc])
    assert bpb[()] < bpb[("units",)] and bpb[()] < bpb[("cache",)] < bpb[("units", "cache")]
    assert bpb[("units", "cache")] - bpb[()] > 0.3  # the repeats get much cheaper with in-context counts
    assert len(trained.book) > 0 and trained.predictor().parser is not None


def test_ablation_does_not_change_the_trained_state(trained, pg19_texts) -> None:
    doc = torch.tensor([[256, *pg19_texts["validation"][2].encode()[:2000]]])
    before = trained.score(doc)
    with ablated(trained, ("units",)):
        assert not torch.equal(trained.score(doc), before)
    assert torch.equal(trained.score(doc), before)


def test_score_accepts_tokens_on_any_device_and_answers_there(trained) -> None:
    tokens = torch.tensor([[256, *b"device test"]], device="cpu")
    out = trained.score(tokens)
    assert out.device == tokens.device and out.dtype == torch.float32

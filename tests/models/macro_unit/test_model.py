"""MacroUnitModel through the nightshift protocol: score, log_probs, causality, vocabularies, generate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nightshift.models.macro_unit import Config
from nightshift.models.macro_unit.generate import generate_bytes
from nightshift.models.macro_unit.units import Codebook
from nightshift.models.protocol import Vocab, ablated
from tests.models.macro_unit.helpers import SMALL, bits_per_byte, windowed_bits_per_byte


def _rows(texts: list[bytes], eot: int = 256) -> torch.Tensor:
    n = max(map(len, texts))
    return torch.tensor([list(t) + [eot] * (n - len(t)) for t in texts], dtype=torch.long)


def test_log_probs_is_a_distribution_over_all_257_ids(trained) -> None:
    """Seen text, random bytes (unseen contexts), eot inside the context."""
    rng = np.random.default_rng(0)
    texts = [b"It was the best of times, it was the worst", bytes(rng.integers(0, 256, 60).tolist()),
             b"end of one\x00\xff" + b"x" * 10]
    tokens = _rows(texts)
    tokens[2, 11] = 256  # a document boundary in the middle of a row
    lp = trained.log_probs(tokens)  # (B, T, 257)
    assert lp.shape == (3, tokens.shape[1], 257)
    assert torch.logsumexp(lp.double(), dim=-1).abs().max() < 1e-6
    assert torch.isfinite(lp).all()


def test_score_is_the_log_prob_of_the_next_token(trained) -> None:
    tokens = _rows([b"She said that the house was", b"\x00\x01 unseen \xfe bytes"])
    tokens[1, 5] = 256
    lp = trained.log_probs(tokens[:, :-1]).double()
    want = lp.gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(trained.score(tokens).double(), want, atol=1e-5)


def test_score_is_causal_and_ignores_right_padding(trained) -> None:
    a = _rows([b"the cat sat on the mat and then"])
    b = a.clone()
    b[0, 20:] = torch.tensor(list(b"XYZ the dog ran away")[: a.shape[1] - 20])
    sa, sb = trained.score(a), trained.score(b)
    assert torch.equal(sa[0, :19], sb[0, :19])
    assert not torch.equal(sa[0, 19:], sb[0, 19:])
    padded = torch.cat([a, torch.full((1, 9), 256)], dim=1)
    assert torch.equal(trained.score(padded)[0, : a.shape[1] - 1], sa[0])


def test_a_document_starts_with_a_fresh_context(trained) -> None:
    """After eot the context is empty: the same as scoring the document in a row of its own."""
    doc = b"Chapter one. The beginning"
    joined = torch.tensor([[*b"some earlier document text", 256, *doc]])
    alone = torch.tensor([[256, *doc]])
    assert torch.allclose(trained.score(joined)[0, -len(doc):], trained.score(alone)[0], atol=0, rtol=0)


def test_windowed_evaluation_equals_full_context_scoring(trained, pg19_texts) -> None:
    """In-context counts read <= horizon bytes back: any window with context_length tokens of left context agrees."""
    doc = pg19_texts["validation"][0].encode()[:2500]
    full = bits_per_byte(trained, [doc])
    assert trained.context_length == trained.config.horizon < len(doc)
    for stride in (7, 100, trained.context_length - trained.config.max_order):
        assert abs(windowed_bits_per_byte(trained, doc, stride) - full) < 1e-5


def test_eot_mass_is_a_count_based_share(trained) -> None:
    p = trained.p_eot()
    assert 0 < p < 1e-3  # one row boundary... no eot in the training rows: (0 + 1) / (bytes + 2)
    assert math.isclose(p, 1 / (trained.stats["bytes"] + 2))


def test_held_out_rows_are_not_counted(pg19_texts) -> None:
    model = Config(**{**SMALL, "holdout_every": 4, "holdout_bytes": 1 << 16}).build(Vocab.bytes_vocab())
    text = pg19_texts["train"][3].encode()[:100_000]
    rows = torch.from_numpy(np.frombuffer(text[: 97 * 1025], dtype=np.uint8).astype(np.int64).reshape(97, 1025))
    metrics = model.observe(rows)
    held = int(metrics["heldout_rows"])
    assert 0 < held < 97
    assert model.stats["bytes"] == (97 - held) * 1025
    model.byte_model()  # flushes
    assert int(model.counts.tables[0].counts.sum()) == (97 - held) * 1025
    assert model.heldout.size == held * 1025  # all of them fit in the held-out sample


def test_memory_is_bounded_by_the_caps_whatever_the_input(pg19_texts) -> None:
    """Random bytes make every high-order table overflow; entries and memory_bytes stay under the config's bound."""
    cap = 4096
    model = Config(**{**SMALL, "max_entries_per_order": cap, "chunk_bytes": 1 << 14}).build(Vocab.bytes_vocab())
    rng = np.random.default_rng(0)
    sizes = []
    for step in range(6):
        noise = rng.integers(0, 256, 60_000).astype(np.uint8).tobytes()
        text = pg19_texts["train"][7].encode()[step * 60_000 : (step + 1) * 60_000]
        for part in (noise, text):
            rows = np.frombuffer(part[: len(part) // 1025 * 1025], dtype=np.uint8).astype(np.int64)
            model.observe(torch.from_numpy(rows.reshape(-1, 1025)))
        model.score(torch.tensor([list(text[:500])]))  # builds the scoring view too
        sizes.append(model.memory_bytes())
        assert all(len(t) <= cap for t in model.counts.tables)
    K = model.config.max_order
    bound = (
        2 * (K + 1) * cap * 16  # counts: (K + 1) tables of <= cap (key, count) pairs; scoring view <= as much again
        + (K + 1) * cap * 24  # per-context totals of the scoring view
        + 9 * model.config.chunk_bytes + model.config.sample_bytes + model.config.holdout_bytes + 64 * 1024
        + model.config.unit_depth * 2 * model.config.sample_bytes * 12  # global unit-context counts (none here)
        + 4 * 10 * 15 * 8 * 5 * 16 * 8  # four mixers: buckets x (<= 16) experts float64 weights
    )
    assert max(sizes) <= bound
    assert model.counts.pruned > 0


def test_bpe_vocabulary_scores_by_the_byte_chain_rule(gpt2_vocab, pg19_texts) -> None:
    vocab, enc = gpt2_vocab
    model = Config(**SMALL).build(vocab)
    assert model.context_length == model.config.horizon  # tokens: each is >= 1 byte
    ids = enc.encode_ordinary(pg19_texts["train"][4][:150_000])
    L = model.train_seq_len + 1
    rows = torch.tensor(ids[: len(ids) // L * L]).reshape(-1, L)
    for i in range(0, len(rows), 8):
        model.observe(rows[i : i + 8])
    doc = pg19_texts["validation"][1][:2000]
    toks = enc.encode_ordinary(doc)
    with ablated(model, ("units", "cache")):  # the byte model alone, so its per-byte logp is the reference
        scores = model.score(torch.tensor([[enc.eot_token, *toks]]))[0].double()  # (n,)
    full = model.score(torch.tensor([[enc.eot_token, *toks]]))[0].double()
    assert torch.isfinite(full).all() and not torch.equal(full, scores)  # in-context counts take part
    x = np.frombuffer(doc.encode(), dtype=np.uint8)
    per_byte = model.byte_model().logp(x, np.minimum(np.arange(len(x)), model.config.max_order))
    # sum over tokens == sum over bytes (+ one log(1 - p_eot) per token)
    want = per_byte.sum() + len(toks) * math.log1p(-model.p_eot())
    assert abs(scores.sum().item() - want) < 1e-3
    # and token by token: each token's score is the sum of its own bytes
    ends = np.cumsum([len(enc.decode_single_token_bytes(t)) for t in toks])
    csum = np.concatenate(([0.0], np.cumsum(per_byte)))
    tok = csum[ends] - csum[np.concatenate(([0], ends[:-1]))] + math.log1p(-model.p_eot())
    assert np.allclose(scores.numpy(), tok, atol=1e-4)
    with pytest.raises(NotImplementedError, match="bytes vocabulary only"):
        model.log_probs(torch.tensor([toks[:5]]))
    out = model.generate(torch.tensor(toks[:10]), 12, generator=torch.Generator().manual_seed(0))
    assert out.shape == (22,) and torch.equal(out[:10], torch.tensor(toks[:10]))
    assert len(vocab.decode(out[10:])) > 0


def test_generate_is_reproducible_and_keeps_the_prompt(trained) -> None:
    prompt = torch.tensor(list(b"It was a dark and stormy night; "))
    g1 = trained.generate(prompt, 80, generator=torch.Generator().manual_seed(1))
    g2 = trained.generate(prompt, 80, generator=torch.Generator().manual_seed(1))
    assert torch.equal(g1, g2) and g1.shape == (len(prompt) + 80,)
    assert torch.equal(g1[: len(prompt)], prompt) and (g1 < 256).all()
    top1 = trained.generate(prompt, 20, top_k=1, generator=torch.Generator().manual_seed(5))
    assert torch.equal(top1, trained.generate(prompt, 20, temperature=0.0))


def test_generation_emits_whole_units_scored_by_the_byte_model(trained) -> None:
    pieces = generate_bytes(trained.byte_model(), trained.book, b"and the ", 200, temperature=0.7, top_k=None,
                            first_bytes=8, generator=torch.Generator().manual_seed(0))
    assert sum(map(len, pieces)) >= 200
    units = set(trained.book.units)
    multi = [p for p in pieces if len(p) > 1]
    assert multi and all(p in units for p in multi)  # every multi-byte step was a whole unit
    # with no units the same sampler can only emit single bytes
    plain = generate_bytes(trained.byte_model(), Codebook(), b"and the ", 50, temperature=0.7, top_k=None,
                           first_bytes=8, generator=torch.Generator().manual_seed(0))
    assert all(len(p) == 1 for p in plain)


def test_bad_token_ids_are_refused(trained) -> None:
    with pytest.raises(ValueError, match="0..256"):
        trained.score(torch.tensor([[1, 2, 300]]))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        trained.observe(torch.tensor([1, 2, 3]))

"""The distribution over the whole vocabulary: sums to 1, never zero, causal, fit on held-out training data."""

from __future__ import annotations

import tiktoken
import torch

from nightshift.models.holographic.predict import BETAS, WIDTHS
from nightshift.models.protocol import Vocab
from tests.models.holographic.helpers import small_config


def _trained(byte_vocab, pg19_rows, **kw):
    model = small_config(**kw).build(byte_vocab)
    rows = pg19_rows(model, 40_000)
    for s in range(0, rows.shape[0], 8):
        model.observe(rows[s : s + 8])
    return model, rows


def test_log_probs_sum_to_one_and_match_score(byte_vocab, pg19_rows):
    model, rows = _trained(byte_vocab, pg19_rows)
    assert model.memory.store.size > 0 and model.memory.holdout.size > 0
    batch = rows[:3, :12]
    logp = model.log_probs(batch[:, :-1])  # (3, 11, V)
    assert logp.shape == (3, 11, byte_vocab.size)
    assert torch.allclose(logp.logsumexp(-1), torch.zeros(3, 11), atol=1e-5)
    assert bool(torch.isfinite(logp).all())  # every token has non-zero probability
    score = model.score(batch)
    assert torch.allclose(score, logp.gather(-1, batch[:, 1:, None]).squeeze(-1), atol=1e-5)


def test_untrained_model_is_uniform(byte_vocab):
    model = small_config().build(byte_vocab)
    logp = model.log_probs(torch.tensor([[1, 2, 3]]))
    assert torch.allclose(logp, torch.full_like(logp, -torch.log(torch.tensor(257.0)).item()), atol=1e-5)


def test_score_is_causal(byte_vocab, pg19_rows):
    model, rows = _trained(byte_vocab, pg19_rows)
    a = rows[:2, :20].clone()
    b = a.clone()
    b[:, 12:] = byte_vocab.eot_id  # right padding must not change earlier positions
    assert torch.equal(model.score(a)[:, :11], model.score(b)[:, :11])


def test_sums_to_one_over_a_50k_vocabulary():
    enc = tiktoken.get_encoding("gpt2")
    vocab = Vocab(name="gpt2", size=enc.n_vocab, eot_id=enc.eot_token,
                  token_bytes=tuple(enc.decode_single_token_bytes(i) for i in range(enc.n_vocab)))
    model = small_config(context_size=3, train_seq_multiple=8).build(vocab)
    text = "The cat sat on the mat. The dog sat on the log. " * 40
    ids = enc.encode(text)
    rows = torch.tensor(ids[: (len(ids) // 25) * 25]).view(-1, 25)
    model.observe(rows)
    logp = model.log_probs(rows[:2, :6])
    assert logp.shape == (2, 6, enc.n_vocab)
    assert torch.allclose(logp.double().exp().sum(-1), torch.ones(2, 6, dtype=torch.float64), atol=1e-4)
    assert bool(torch.isfinite(logp).all())
    # seen continuation: memory makes " mat" after " on the" far likelier than uniform
    probe = torch.tensor([enc.encode("The cat sat on the")])
    nxt = enc.encode(" mat")[0]
    assert float(model.log_probs(probe)[0, -1, nxt]) > -2.0


def test_heldout_rows_never_enter_the_store_and_fit_only_uses_them(byte_vocab, pg19_rows):
    model, rows = _trained(byte_vocab, pg19_rows)
    held = model.heldout_rows(rows)
    assert 0 < int(held.sum()) < rows.shape[0]
    n = model.context_length
    windows_per_row = rows.shape[1] - n
    assert model.memory.counters["samples"] == int((~held).sum()) * windows_per_row
    assert model.memory.counters["heldout_samples"] == int(held.sum()) * windows_per_row
    # bigram counts come from stored rows only
    assert int(model.memory.backoff.unigram.sum()) == int((~held).sum()) * (rows.shape[1] - 1)
    model.ensure_fitted()
    info = model.memory.fit_info
    assert info["fit_width"] in WIDTHS and info["fit_beta"] in BETAS
    assert info["heldout_nats"] <= info["heldout_backoff_nats"] + 1e-9


def test_generate_continues_a_memorised_text(byte_vocab):
    model = small_config(context_size=6, holdout_every=1_000_000).build(byte_vocab)
    text = b"the quick brown fox jumps over the lazy dog; " * 30
    rows = torch.tensor(list(text[: (len(text) // 97) * 97])).view(-1, 97)
    model.observe(rows)
    prompt = torch.tensor(list(b"the quick brown"))
    gen = torch.Generator().manual_seed(0)
    out = model.generate(prompt, 20, temperature=0.01, generator=gen)
    assert out.shape == (35,) and torch.equal(out[:15], prompt)
    assert bytes(out[15:].tolist()) == b" fox jumps over the "
    sampled = model.generate(prompt, 10, top_k=5, generator=torch.Generator().manual_seed(1))
    assert int(sampled.max()) < byte_vocab.size


def test_suffix_flavor_with_reading_memory_sums_to_one_and_matches_score(byte_vocab, pg19_rows):
    """The depth vote (chain), the reading memory and its window counts: normalised, consistent, causal."""
    model, rows = _trained(byte_vocab, pg19_rows, context_size=8, key_scales=(1, 2, 4, 8), vote="depth",
                           reading_window=24, reading_k=6, holdout_every=4)
    model.ensure_fitted()
    assert model.memory.params.chain is not None and model.memory.params.u0 > 0
    batch = rows[:3, :60]
    logp = model.log_probs(batch[:, :-1])  # (3, 59, V)
    assert torch.allclose(logp.logsumexp(-1), torch.zeros(3, 59), atol=1e-5)
    assert torch.allclose(model.score(batch), logp.gather(-1, batch[:, 1:, None]).squeeze(-1), atol=1e-5)
    late = batch.clone()
    late[:, 40:] = byte_vocab.eot_id
    assert torch.equal(model.score(late)[:, :39], model.score(batch)[:, :39])


def test_generation_samples_from_the_last_position_of_log_probs(byte_vocab, pg19_rows):
    """generate() computes reading evidence for the last position only; it must match log_probs there."""
    model, rows = _trained(byte_vocab, pg19_rows, context_size=8, key_scales=(1, 2, 4, 8), vote="depth",
                           reading_window=24, reading_k=6, holdout_every=4)
    prompt = rows[0, :50]
    gen = torch.Generator().manual_seed(3)
    out = model.generate(prompt, 1, temperature=1.0, generator=gen)
    expect = model.log_probs(prompt[None])[0, -1].double().exp()
    gen2 = torch.Generator().manual_seed(3)
    assert int(out[-1]) == int(torch.multinomial(expect / expect.sum(), 1, generator=gen2))

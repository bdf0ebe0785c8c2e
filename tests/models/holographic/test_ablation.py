"""Ablations through the protocol seam: switching a part off changes the score exactly by removing that part."""

from __future__ import annotations

import pytest
import torch

from nightshift.models.holographic import predict
from nightshift.models.protocol import ablated
from tests.models.holographic.helpers import small_config

SUFFIX = dict(context_size=8, key_scales=(1, 2, 3, 4, 6, 8), vote="depth", noise_std=1.0, train_seq_multiple=16,
              holdout_every=4)


def _repeating_rows(vocab, phrases: int, length: int, rows: int, row_len: int, seed: int) -> torch.Tensor:
    """Rows stitched from a small pool of random byte phrases: every phrase recurs many times."""
    gen = torch.Generator().manual_seed(seed)
    pool = torch.randint(0, 256, (phrases, length), generator=gen)
    picks = torch.randint(0, phrases, (rows, row_len // length + 1), generator=gen)
    return pool[picks].reshape(rows, -1)[:, :row_len]


@pytest.fixture(scope="module")
def trained(byte_vocab):
    model = small_config(**SUFFIX).build(byte_vocab)
    rows = _repeating_rows(byte_vocab, 40, 12, 96, model.train_seq_len + 1, seed=0)
    for s in range(0, rows.shape[0], 16):
        model.observe(rows[s : s + 16])
    return model, _repeating_rows(byte_vocab, 40, 12, 4, 200, seed=0)


def test_memory_ablation_raises_the_loss_on_repeated_text(trained):
    model, val = trained
    full = -float(model.score(val).sum())
    with ablated(model, {"memory"}):
        backoff_only = -float(model.score(val).sum())
    assert full < 0.5 * backoff_only  # the phrases repeat: memory predicts them, a bigram cannot
    assert -float(model.score(val).sum()) == full  # restored exactly after the block


def test_memory_off_is_exactly_the_refit_backoff(trained):
    model, val = trained
    with ablated(model, {"memory"}):
        logp = model.score(val)  # (B, T)
        params = model.mix
    assert params != model.memory.params  # refit for the ablation ...
    h = model.memory.holdout  # ... on held-out TRAINING windows: the beta that serves them best
    lls = [float(model.memory.backoff.prob(h.view("prev"), h.view("target"), b).log().mean()) for b in predict.BETAS]
    assert params.beta == predict.BETAS[max(range(len(lls)), key=lls.__getitem__)]
    p_bo = model.memory.backoff.prob(val[:, :-1], val[:, 1:], params.beta)  # (B, T)
    assert torch.allclose(logp.double(), p_bo.log(), atol=1e-5)


def test_prototypes_off_equals_a_model_without_prototypes(trained, byte_vocab):
    from nightshift.models.protocol import SleepContext

    model, val = trained
    model.sleep(SleepContext(step=1))
    assert len(model.memory.protos) > 0
    with ablated(model, {"prototypes"}):
        without = model.score(val)
    twin = small_config(**SUFFIX).build(byte_vocab)
    twin.load_state_dict(model.state_dict())
    twin.memory.protos.select(torch.zeros(len(twin.memory.protos), dtype=torch.bool))  # no prototypes, no schemas
    twin.memory.fitted = False
    assert torch.allclose(twin.score(val), without, atol=1e-6)


def test_unknown_part_is_refused(trained):
    model, _ = trained
    assert model.ablatable == ("memory", "prototypes")
    with pytest.raises(ValueError, match="cannot ablate units; ablatable parts: memory, prototypes"):
        model.set_ablation({"units"})

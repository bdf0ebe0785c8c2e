"""Sleep: Non-REM prototypes, REM schemas that must earn their place, metrics, determinism."""

from __future__ import annotations

import torch

from models.holographic import algebra
from models.holographic import sleep as dreaming
from models.holographic.keys import KeyLayout
from models.holographic.prototypes import Prototypes, histogram
from models.protocol import SleepContext
from tests.models.holographic.conftest import small_config

EXPECTED = {"prototypes", "schemas", "consolidation_ratio", "compression_ratio", "mean_sigma", "witness_stability",
            "enstrophy", "seconds", "heldout_acc", "new_schemas"}


def _model(byte_vocab, pg19_rows, **kw):
    model = small_config(**kw).build(byte_vocab)
    rows = pg19_rows(model, 50_000)
    for s in range(0, rows.shape[0], 8):
        model.observe(rows[s : s + 8])
    return model


def test_sleep_consolidates_and_reports(byte_vocab, pg19_rows):
    model = _model(byte_vocab, pg19_rows, rem_cycles=3, schema_gate=False)
    buffered = model.memory.buffer.size
    assert buffered == model.config.episodic_buffer_size  # uniform sample, full
    h_before = model.memory.H.clone()
    m = model.sleep(SleepContext(step=100))
    assert EXPECTED <= set(m), EXPECTED - set(m)
    assert m["prototypes"] > 0 and m["episodes"] == buffered
    assert 0.0 <= m["consolidation_ratio"] <= 1.0 and 0.0 <= m["mean_sigma"] <= 1.0
    assert model.memory.buffer.size == 0
    assert torch.allclose(model.memory.H, algebra.grace(h_before))
    protos = model.memory.protos
    assert bool((protos.support >= 1).all())
    assert torch.allclose(protos.centroid.norm(dim=1), torch.ones(len(protos)), atol=1e-5)
    assert protos.num_schemas == m["schemas"]
    if m["new_schemas"]:
        assert "schemas_earned" in m and "heldout_acc_with_schemas" in m


def test_schemas_must_earn_their_place(byte_vocab, pg19_rows):
    gated = _model(byte_vocab, pg19_rows, rem_cycles=3, schema_gate=True)
    m = gated.sleep(SleepContext(step=1))
    if m.get("new_schemas", 0) and not m.get("schemas_earned", 1.0):
        assert gated.memory.protos.num_schemas == 0
    if m.get("schemas_earned") == 1.0:
        assert m["heldout_nats_with_schemas"] < m["heldout_nats_without_schemas"]


def test_sleep_is_deterministic(byte_vocab, pg19_rows):
    a = _model(byte_vocab, pg19_rows)
    b = _model(byte_vocab, pg19_rows)
    a.sleep(SleepContext(step=1))
    b.sleep(SleepContext(step=1))
    for name, t in a.memory.protos.state().items():
        assert torch.equal(t, b.memory.protos.state()[name]), name


def test_nrem_clusters_repeated_contexts():
    gen = torch.Generator().manual_seed(0)
    centers = torch.nn.functional.normalize(torch.randn(5, 16, generator=gen), dim=1)
    keys = torch.nn.functional.normalize(centers.repeat_interleave(20, 0) + 0.01 * torch.randn(100, 16, generator=gen),
                                         dim=1)
    targets = torch.arange(5).repeat_interleave(20)
    rows, stats = dreaming.nrem(keys, torch.ones(100), keys.clone(), targets, 4, KeyLayout.faithful(8))
    assert stats["new_prototypes"] == 5
    assert sorted(rows["support"].tolist()) == [20.0] * 5
    assert sorted(rows["hist_ids"][:, 0].tolist()) == [0, 1, 2, 3, 4]


def test_merge_and_prune():
    p = Prototypes(2, KeyLayout.faithful(8))
    c = torch.nn.functional.normalize(torch.tensor([[1.0] + [0.0] * 15, [1.0, 0.01] + [0.0] * 14,
                                                    [0.0, 1.0] + [0.0] * 14]), dim=1)
    p.append({"centroid": c, "scale": torch.tensor([0.5, 0.5, 0.01]), "signature": c,
              "hist_ids": torch.tensor([[1, 2], [1, 3], [4, 0]]), "hist_counts": torch.tensor([[3.0, 1], [2, 2], [1, 0]]),
              "radius": torch.zeros(3), "support": torch.tensor([4.0, 4.0, 1.0]), "sigma": torch.ones(3),
              "schema": torch.zeros(3, dtype=torch.bool)})
    assert dreaming.merge_similar(p) == 1
    assert len(p) == 2 and sorted(p.support.tolist()) == [1.0, 8.0]
    big = int(p.support.argmax())
    assert p.hist_ids[big, 0] == 1 and p.hist_counts[big, 0] == 5.0
    assert dreaming.prune(p, max_prototypes=10) == 1  # the low-salience, support-1 one
    assert len(p) == 1


def test_histogram_top_width():
    ids, counts = histogram(torch.tensor([5, 5, 5, 2, 2, 9, 1]), torch.tensor([0, 0, 0, 0, 0, 0, 1]), 2, 2)
    assert ids.tolist() == [[5, 2], [1, 0]] and counts.tolist() == [[3.0, 2.0], [1.0, 0.0]]

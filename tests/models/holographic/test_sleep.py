"""Sleep: Non-REM prototypes, REM schemas that must earn their place, metrics, determinism."""

from __future__ import annotations

import torch

from nightshift.models.holographic import algebra
from nightshift.models.holographic import sleep as dreaming
from nightshift.models.holographic.keys import KeyLayout
from nightshift.models.holographic.prototypes import Prototypes, histogram
from nightshift.models.protocol import SleepContext
from tests.models.holographic.helpers import small_config

EXPECTED = {"prototypes", "schemas", "consolidation_ratio", "compression_ratio", "mean_sigma", "witness_stability",
            "enstrophy", "seconds", "heldout_acc", "new_schemas", "vorticity_auc", "vorticity_same_structure_cos",
            "vorticity_order_swap_cos"}


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
              "hist_ids": torch.tensor([[1, 2], [1, 3], [4, 0]]),
              "hist_counts": torch.tensor([[3.0, 1], [2, 2], [1, 0]]),
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


def _schema_rows(model, centroids: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    g, h = centroids.shape[0], model.config.prototype_targets
    ids = torch.zeros(g, h, dtype=torch.long)
    counts = torch.zeros(g, h)
    ids[:, 0], counts[:, 0] = targets, 10.0
    return {"centroid": centroids, "scale": torch.ones(g), "signature": torch.zeros(g, 16), "hist_ids": ids,
            "hist_counts": counts, "radius": torch.zeros(g), "support": torch.full((g,), 10.0),
            "sigma": model.layout.sigma(centroids), "schema": torch.ones(g, dtype=torch.bool)}


def test_a_schema_that_helps_held_out_text_is_kept_and_a_useless_one_is_not(byte_vocab, pg19_rows):
    # context 12: distinct held-out windows stay distinct under the merge rule (cosine >= 1 - phi^-3); at
    # context 4 that rule pools 256 such schemas into ~11 blobs whose histograms no longer help
    model = _model(byte_vocab, pg19_rows, context_size=12)
    model.sleep(SleepContext(step=1))
    before = len(model.memory.protos)
    base, y = model.heldout_evidence()
    keys = model.memory.holdout.view("key")
    useless = _schema_rows(model, torch.nn.functional.normalize(torch.randn(32, 16), dim=1),
                           torch.zeros(32, dtype=torch.long))  # byte 0 never occurs in the text
    m = model.consider_schemas(useless, base, y)
    assert m["schemas_earned"] == 0.0 and len(model.memory.protos) == before
    helpful = _schema_rows(model, keys[:256], y[:256])  # built from the held-out windows' own continuations
    m = model.consider_schemas(helpful, base, y)
    assert m["schemas_earned"] == 1.0 and m["heldout_nats_with_schemas"] < m["heldout_nats_without_schemas"]
    assert model.memory.protos.num_schemas > 0


def test_pruning_fires_on_prototypes_that_stop_recurring(byte_vocab, pg19_rows):
    model = _model(byte_vocab, pg19_rows, rem_cycles=0)
    model.memory.buffer.clear()  # nothing new to consolidate: the old prototypes are not seen again
    protos = model.memory.protos
    protos.select(torch.zeros(len(protos), dtype=torch.bool))
    faint = torch.zeros(1, 16)
    faint[0, 5] = 1.0  # a pure bivector: no scalar, no pseudoscalar -> salience 0
    bright = torch.zeros(1, 16)
    bright[0, 0] = 1.0  # pure scalar: salience = its scale
    rows = _schema_rows(model, torch.cat([faint, bright]), torch.tensor([1, 2]))
    protos.append(rows | {"support": torch.tensor([3.0, 3.0]), "scale": torch.tensor([0.5, 0.5]),
                          "schema": torch.zeros(2, dtype=torch.bool)})
    m = model.sleep(SleepContext(step=1))
    assert m["pruned"] == 1.0  # support 3 * phi^-1 < 2 and salience < phi^-3: gone
    assert len(protos) == 1 and float(protos.centroid[0, 0]) == 1.0  # the salient one stays
    m = model.sleep(SleepContext(step=2))
    assert m["pruned"] == 0.0  # salient prototypes are kept however rarely they recur


def test_sleep_fits_the_same_mixture_as_evaluation(byte_vocab, pg19_rows):
    """The fit sleep leaves behind uses every part the evaluation uses (reading memory and its window counts)."""
    model = _model(byte_vocab, pg19_rows, context_size=8, key_scales=(1, 2, 4, 8), vote="depth", reading_window=24,
                   reading_k=6, holdout_every=4)
    model.sleep(SleepContext(step=1))
    after_sleep = model.memory.params
    model.memory.fitted = False
    model.ensure_fitted()
    assert model.memory.params == after_sleep and after_sleep.u0 > 0

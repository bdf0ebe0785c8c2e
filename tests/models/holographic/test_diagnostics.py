"""The spec's seed metrics (eval_metrics): honest, deterministic, bounded, and tied to the memory's state."""

from __future__ import annotations

import math

import pytest

from nightshift.models.holographic import diagnostics
from nightshift.models.protocol import SleepContext, ablated
from tests.models.holographic.helpers import byte_rows, small_config

ALWAYS = {"retrieval_accuracy", "retrieval_nearest_accuracy", "retrieval_baseline_accuracy", "generalization_accuracy",
          "generalization_nearest_accuracy", "generalization_baseline_accuracy", "vorticity_discriminability",
          "vorticity_same_structure_cos", "vorticity_order_swap_cos", "grace_stability", "consolidation_ratio",
          "enstrophy", "prototypes", "schemas"}
AFTER_SLEEP = {"compression_ratio", "prototype_target_entropy", "prototype_stability", "prototype_coverage"}


@pytest.fixture(scope="module")
def trained(byte_vocab, pg19_texts):
    """A 12-byte-context model that observed ~30 KB of pg19 train text (no sleep yet)."""
    model = small_config(context_size=12, train_seq_multiple=8).build(byte_vocab)
    rows = byte_rows(pg19_texts["train"], byte_vocab, model.train_seq_len + 1, 30_000)
    for s in range(0, rows.shape[0], 8):
        model.observe(rows[s : s + 8])
    return model


def test_before_sleep_retrieval_beats_generalization(trained):
    m = trained.eval_metrics()
    assert ALWAYS <= set(m), ALWAYS - set(m)
    assert not (AFTER_SLEEP | {"witness_stability"}) & set(m)  # undefined without prototypes: omitted, not NaN
    assert all(math.isfinite(v) for v in m.values())
    # seen windows come back: the stored key is its own nearest neighbour, and the model's argmax follows it
    assert m["retrieval_nearest_accuracy"] > 0.9
    assert m["retrieval_accuracy"] > 0.5
    assert m["retrieval_accuracy"] > m["generalization_accuracy"]
    assert m["retrieval_accuracy"] > m["retrieval_baseline_accuracy"] + 0.3  # not the most frequent byte
    assert 0.0 <= m["generalization_accuracy"] <= 1.0
    assert m["prototypes"] == 0.0 and m["schemas"] == 0.0
    assert 0.0 <= m["grace_stability"] <= 1.0 and 0.0 <= m["consolidation_ratio"] <= 1.0
    assert 0.0 <= m["vorticity_discriminability"] <= 1.0 and m["enstrophy"] >= 0.0


def test_metrics_are_deterministic_and_ignore_ablation(trained):
    a = trained.eval_metrics()
    b = trained.eval_metrics()
    assert a == b
    with ablated(trained, ("memory",)):
        assert trained.eval_metrics() == a  # the memory's metrics, whatever is switched off for scoring


def test_retrieval_is_measured_against_the_truth(trained):
    """Break the stored targets: retrieval must fall (it is not a constant, nor the model scoring itself)."""
    store = trained.memory.store
    saved = store.cols["target"].clone()
    try:
        store.cols["target"][: store.size] = (saved[: store.size] + 1) % trained.vocab.size
        trained.memory.fitted = False
        broken = trained.eval_metrics()
    finally:
        store.cols["target"] = saved
        trained.memory.fitted = False
    assert broken["retrieval_nearest_accuracy"] < 0.1


def test_counts_follow_the_memory_and_change_after_sleep(byte_vocab, pg19_rows):
    model = small_config(rem_cycles=2, schema_gate=False).build(byte_vocab)
    rows = pg19_rows(model, 50_000)
    for s in range(0, rows.shape[0], 8):
        model.observe(rows[s : s + 8])
    before = model.eval_metrics()
    assert before["prototypes"] == 0.0
    model.sleep(SleepContext(step=1))
    after = model.eval_metrics()
    protos = model.memory.protos
    assert after["prototypes"] == len(protos) > 0
    assert after["schemas"] == protos.num_schemas
    assert AFTER_SLEEP <= set(after), AFTER_SLEEP - set(after)
    assert after["compression_ratio"] == model.memory.store.size / len(protos)
    width = model.config.prototype_targets
    assert 0.0 <= after["prototype_target_entropy"] <= math.log2(width) + 1e-9
    assert 0.0 <= after["prototype_stability"] <= 1.0 and 0.0 < after["prototype_coverage"] <= 1.0
    if "witness_stability" in after:
        assert -1.0 <= after["witness_stability"] <= 1.0 + 1e-6
    # the episode-level metrics describe the store, which sleep leaves alone
    for k in ("grace_stability", "consolidation_ratio", "enstrophy"):
        assert after[k] == before[k]
    assert after == model.eval_metrics()
    # a second sleep on new text changes the prototype table, and the counts follow it
    more = pg19_rows(model, 100_000)[rows.shape[0] :]
    for s in range(0, more.shape[0], 8):
        model.observe(more[s : s + 8])
    model.sleep(SleepContext(step=2))
    again = model.eval_metrics()
    assert again["prototypes"] == len(model.memory.protos) and again["schemas"] == model.memory.protos.num_schemas
    assert again["prototypes"] != after["prototypes"] or again["compression_ratio"] != after["compression_ratio"]


def test_spread_is_fixed_and_bounded():
    assert diagnostics.spread(10, 4).tolist() == [0, 2, 5, 7]
    assert diagnostics.spread(3, 256).tolist() == [0, 1, 2]
    assert diagnostics.spread(10**8, 256).shape == (256,) and int(diagnostics.spread(10**8, 256).max()) < 10**8
    assert diagnostics.spread(0, 256).numel() == 0


def test_suffix_keys_depth_vote_and_reading_memory(byte_vocab, pg19_rows):
    """The locality flavor's path (8 even coefficients per scale, depth vote, reading evidence) is measured too."""
    model = small_config(context_size=8, key_scales=(1, 2, 4, 8), vote="depth", reading_window=64,
                         rem_cycles=1, schema_gate=False).build(byte_vocab)
    assert model.config.reading
    rows = pg19_rows(model, 30_000)
    for s in range(0, rows.shape[0], 8):
        model.observe(rows[s : s + 8])
    model.sleep(SleepContext(step=1))
    m = model.eval_metrics()
    assert ALWAYS <= set(m) and m["prototypes"] == len(model.memory.protos)
    assert m["retrieval_accuracy"] > 0.5 and m["retrieval_accuracy"] > m["generalization_accuracy"]
    assert m == model.eval_metrics()

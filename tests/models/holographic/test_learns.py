"""It learns: validation bits per byte on a pg19 slice falls far below the untrained (uniform) value."""

from __future__ import annotations

import dataclasses
import math

import pytest

from nightshift.models.holographic import metrics
from nightshift.models.protocol import SleepContext
from tests.models.holographic.helpers import byte_rows, small_config


@pytest.mark.slow
def test_bits_per_byte_fall_on_pg19(byte_vocab, pg19_texts):
    model = small_config(context_size=4, max_attractors=300_000, knn_k=32, holdout_every=16,
                         holdout_size=1024, train_seq_multiple=64).build(byte_vocab)
    val = [list(text.encode()[:4_000]) for text in pg19_texts["validation"]]
    window, stride = metrics.full_context_windows(model)  # every position gets its 4 bytes of context
    untrained = metrics.bits_per_byte(model, val, window=window, stride=stride)
    assert abs(untrained - math.log2(byte_vocab.size)) < 1e-3
    rows = byte_rows(pg19_texts["train"], byte_vocab, model.train_seq_len + 1, 300_000)
    for s in range(0, rows.shape[0], 16):
        model.observe(rows[s : s + 16])
    model.sleep(SleepContext(step=1))
    trained = metrics.bits_per_byte(model, val, window=window, stride=stride)
    # the same counts with memory switched off: what the kNN memory adds over the bigram backoff
    fitted = model.memory.params
    model.memory.params = dataclasses.replace(fitted, alpha=1e12)
    backoff_only = metrics.bits_per_byte(model, val, window=window, stride=stride)
    model.memory.params = fitted
    print(f"\nval bpb: untrained {untrained:.3f}, backoff only {backoff_only:.3f}, holographic {trained:.3f}")
    assert trained < 0.45 * untrained
    assert trained < backoff_only - 0.2

"""Retrieval accuracy on seen windows is exact; generalization and discriminability are measured honestly."""

from __future__ import annotations

import torch

from nightshift.models.holographic import metrics
from tests.models.holographic.helpers import byte_rows, small_config


def test_seen_windows_are_retrieved_exactly(byte_vocab, pg19_texts):
    model = small_config(context_size=12, train_seq_multiple=8).build(byte_vocab)
    rows = byte_rows(pg19_texts["train"], byte_vocab, model.train_seq_len + 1, 30_000)
    for s in range(0, rows.shape[0], 8):
        model.observe(rows[s : s + 8])
    seen = rows[~model.heldout_rows(rows)][:8]
    acc = metrics.top1(model, seen)
    # a 12-byte window almost never repeats with another continuation; the stored key comes back
    assert acc["nearest_top1"] >= 0.97
    assert acc["model_top1"] >= 0.9
    assert acc["most_frequent_top1"] < 0.3
    val = byte_rows(pg19_texts["validation"], byte_vocab, model.train_seq_len + 1, 6_000)
    gen = metrics.top1(model, val)
    assert 0.0 <= gen["model_top1"] <= 1.0 and gen["windows"] > 0
    # fewer exact matches on unseen text: retrieval accuracy is not a constant 1.0
    assert gen["nearest_top1"] < acc["nearest_top1"]


def test_vorticity_discriminability_is_reported(byte_vocab, pg19_texts):
    model = small_config(context_size=16).build(byte_vocab)
    rows = byte_rows(pg19_texts["validation"], byte_vocab, 200, 4_000)
    out = metrics.vorticity_discriminability(model, rows, pairs=128)
    assert set(out) == {"same_structure_cos", "order_swap_cos", "auc"}
    assert -1.0 <= out["order_swap_cos"] <= 1.0 and 0.0 <= out["auc"] <= 1.0


def test_eval_windows_score_every_target_once():
    for n, stride, length in [(4, 2, 10), (8, 8, 50), (5, 1, 23), (16, 8, 3), (3, 3, 2)]:
        seen: list[int] = []
        for start, end, first in metrics.eval_windows(list(range(length)), n, stride):
            assert end - start <= n + 1 and start < first <= end
            seen += list(range(first, end))
        assert seen == list(range(1, length))


def test_bits_per_byte_of_untrained_model_is_log2_vocab(byte_vocab):
    model = small_config().build(byte_vocab)
    docs = [list(b"hello world, hello again"), list(b"short")]
    assert abs(metrics.bits_per_byte(model, docs) - torch.log2(torch.tensor(257.0)).item()) < 1e-4

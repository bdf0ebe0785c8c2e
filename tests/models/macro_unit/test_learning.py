"""The family learns: bits per byte on pg19 validation slices, against order-0 and order-2 baselines."""

from __future__ import annotations

import math

import numpy as np

from nightshift.models.macro_unit import Config
from nightshift.models.protocol import SleepContext, Vocab, ablated
from tests.models.macro_unit.helpers import SMALL, bits_per_byte, train

TRAIN_BYTES = 1_500_000
VAL_BYTES = 40_000  # the first 40 KB of each validation book


def test_bits_per_byte_falls_far_below_untrained_and_beats_low_order_baselines(pg19_texts) -> None:
    train_text = "".join(pg19_texts["train"][:4]).encode()[:TRAIN_BYTES]
    val = [t.encode()[:VAL_BYTES] for t in pg19_texts["validation"]]
    bpb = {}
    byte_model_only = ("units", "cache")  # the baselines are the plain Kneser-Ney byte model
    for order in (0, 2, 5):
        model = Config(**{**SMALL, "max_order": order, "max_entries_per_order": 1 << 20}).build(Vocab.bytes_vocab())
        if order == 5:
            with ablated(model, byte_model_only):
                bpb["untrained"] = bits_per_byte(model, val)
        train(model, train_text, batch=64)
        model.sleep(SleepContext(step=1))  # units are promoted; they now take part in the score too
        with ablated(model, byte_model_only):
            bpb[order] = bits_per_byte(model, val)
    bpb["full"] = bits_per_byte(model, val)  # order 5 with in-context counts and units
    # an independent order-0 reference: add-1/2 unigram over the same training bytes
    counts = np.bincount(np.frombuffer(train_text, dtype=np.uint8), minlength=256) + 0.5
    p = counts / counts.sum()
    ref0 = -sum(np.log2(p[np.frombuffer(v, dtype=np.uint8)]).sum() for v in val) / sum(map(len, val))
    # untrained: uniform over 256 bytes (8 bits) and p_eot = (0 + 1) / (0 + 0 + 2) (1 bit)
    assert abs(bpb["untrained"] - 9.0) < 1e-6
    assert abs(bpb[0] - ref0) < 0.02
    assert bpb[5] < bpb[2] - 0.4 and bpb[2] < bpb[0] - 1.0
    assert bpb[5] < 2.7 and math.isfinite(bpb[5]), bpb
    assert bpb["full"] < bpb[5] - 0.02, bpb  # a 512-byte horizon here: the gain grows with it

"""Bad input is refused before any compute, with one line naming the value; flavors build."""

from __future__ import annotations

import logging

import pytest
import torch

from nightshift.models import registry
from nightshift.models.errors import ModelConfigError
from nightshift.models.holographic import FLAVORS, Config, HolographicModel
from nightshift.models.holographic.metrics import bits_per_byte
from nightshift.models.protocol import Vocab


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_attractors", 0, "max_attractors=0"),
        ("context_size", 0, "context_size=0"),
        ("context_size", -3, "context_size=-3"),
        ("rem_cycles", -1, "rem_cycles=-1"),
        ("noise_std", 0.0, "noise_std=0.0"),
        ("episodic_buffer_size", 0, "episodic_buffer_size=0"),
        ("signature_weight", 1.5, "signature_weight=1.5"),
        ("store_policy", "fifo", "store_policy='fifo'"),
        ("holdout_every", 1, "holdout_every=1"),
        ("store_device", "cuda", "store_device='cuda': must be one of auto, host, model"),
    ],
)
def test_bad_values_are_named(field, value, message, byte_vocab):
    with pytest.raises(ModelConfigError, match=message) as err:
        Config(**{field: value}).build(byte_vocab)
    assert "\n" not in str(err.value)


def test_lossy_tokenizer_warns_and_bits_per_byte_is_refused(caplog):
    lossy = Vocab(name="lowercase-words", size=100, eot_id=99, token_bytes=tuple(b"a" for _ in range(100)),
                  lossless=False)
    with caplog.at_level(logging.WARNING):
        model = Config(context_size=2, max_attractors=10).build(lossy)
    assert "not lossless" in caplog.text
    with pytest.raises(ModelConfigError, match="lossless"):
        bits_per_byte(model, [[1, 2, 3]])


def test_observe_rejects_bad_tokens(byte_vocab):
    model = Config(context_size=4, max_attractors=10).build(byte_vocab)
    with pytest.raises(ValueError, match="shape"):
        model.observe(torch.zeros(2, 4, dtype=torch.long))  # shorter than context_size + 1
    with pytest.raises(ValueError, match="257"):
        model.observe(torch.full((1, 10), 300))


def test_flavors_resolve_and_build(byte_vocab):
    spec = registry.resolve("holographic")
    assert spec.family == "holographic" and spec.flavor == "base"
    for name in FLAVORS:
        model = registry.resolve(f"holographic:{name}").config.build(byte_vocab)
        assert isinstance(model, HolographicModel)
        assert model.trains_by_gradient is False
        cfg = FLAVORS[name].model
        assert model.context_length == max(cfg.context_size, cfg.reading_window)  # the reading memory reads further
        assert model.train_seq_len % model.context_length == 0
    over = registry.resolve("holographic:tiny", {"context_size": "8", "rem_cycles": "0"}).config
    assert over.context_size == 8 and over.rem_cycles == 0

"""Checkpoints: all memory goes through state_dict -> torch.save -> torch.load(weights_only=True)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nightshift.models.errors import ModelConfigError
from nightshift.models.macro_unit import Config
from nightshift.models.protocol import SleepContext, Vocab
from tests.models.macro_unit.helpers import SMALL, byte_rows, train


def _reload(model, path: Path, config: Config | None = None):
    torch.save(model.state_dict(), path)
    fresh = (config or model.config).build(model.vocab)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    return fresh


def test_round_trip_through_a_file_gives_identical_predictions(trained, pg19_texts, tmp_path: Path) -> None:
    assert len(trained.book) > 0  # units, samples and counts all have to survive
    fresh = _reload(trained, tmp_path / "ckpt.pt")
    doc = torch.tensor([[256, *pg19_texts["validation"][2].encode()[:4000]]])
    assert torch.equal(trained.score(doc), fresh.score(doc))
    assert torch.equal(trained.log_probs(doc[:, :200]), fresh.log_probs(doc[:, :200]))
    assert fresh.book.units == trained.book.units
    text = pg19_texts["validation"][2].encode()[:5000]
    assert fresh.encode(text).tolist() == trained.encode(text).tolist()
    assert fresh.sample.items == trained.sample.items and fresh.heldout.items == trained.heldout.items
    assert fresh.stats == trained.stats and fresh.p_eot() == trained.p_eot()


def test_training_resumed_from_a_checkpoint_matches_uninterrupted_training(pg19_texts, tmp_path: Path) -> None:
    text = pg19_texts["train"][5].encode()
    first, second = text[:120_000], text[120_000:240_000]
    config = Config(**SMALL)
    straight = config.build(Vocab.bytes_vocab())
    train(straight, first)
    resumed = _reload(straight, tmp_path / "mid.pt")
    for model in (straight, resumed):
        train(model, second)
        model.sleep(SleepContext(step=2))
    a, b = straight.state_dict()["_extra_state"], resumed.state_dict()["_extra_state"]
    for ta, tb in zip(a["counts"], b["counts"], strict=True):
        assert torch.equal(ta["keys"], tb["keys"]) and torch.equal(ta["counts"], tb["counts"])
    assert straight.book.units == resumed.book.units


def test_a_checkpoint_from_another_order_is_refused(trained, tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="max_order"):
        _reload(trained, tmp_path / "x.pt", Config(**{**SMALL, "max_order": 3}))


def test_pending_bytes_are_counted_before_saving(tmp_path: Path) -> None:
    """Bytes still buffered (below chunk_bytes) must not be lost by a checkpoint."""
    model = Config(**{**SMALL, "chunk_bytes": 1 << 30}).build(Vocab.bytes_vocab())
    model.observe(byte_rows(b"abcdefgh" * 4000, model.train_seq_len + 1))
    assert model._pending_bytes > 0
    fresh = _reload(model, tmp_path / "p.pt")
    x = torch.tensor([list(b"abcdefgh")])
    assert torch.equal(model.score(x), fresh.score(x))
    assert int(np.sum(fresh.counts.tables[0].counts)) == model.stats["bytes"]

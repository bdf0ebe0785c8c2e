"""Fixtures for the holographic family: small models, byte streams from the pg19 sample."""

from __future__ import annotations

import pytest
import torch

from nightshift.models.protocol import Vocab
from tests.models.holographic.helpers import byte_rows


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a loaded 2-core box, 2 OpenMP threads spin and run 10-100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def byte_vocab() -> Vocab:
    return Vocab.bytes_vocab()




@pytest.fixture(scope="session")
def pg19_rows(pg19_texts, byte_vocab):
    """Factory: pg19 train bytes as (N, T+1) rows for a model."""

    def make(model, max_bytes: int = 60_000) -> torch.Tensor:
        return byte_rows(pg19_texts["train"], byte_vocab, model.train_seq_len + 1, max_bytes)

    return make



"""Fixtures for the holographic family: small models, byte streams from the pg19 sample."""

from __future__ import annotations

import pytest
import torch

from nightshift.models.holographic import Config
from nightshift.models.protocol import Vocab


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


def byte_rows(texts: list[str], vocab: Vocab, row_len: int, max_bytes: int) -> torch.Tensor:
    """Documents as bytes + eot, concatenated and cut into rows (N, row_len) like the data reader does."""
    stream: list[int] = []
    for text in texts:
        stream += list(text.encode()[: max_bytes - len(stream)]) + [vocab.eot_id]
        if len(stream) >= max_bytes:
            break
    n = len(stream) // row_len
    return torch.tensor(stream[: n * row_len]).view(n, row_len)


@pytest.fixture(scope="session")
def pg19_rows(pg19_texts, byte_vocab):
    """Factory: pg19 train bytes as (N, T+1) rows for a model."""

    def make(model, max_bytes: int = 60_000) -> torch.Tensor:
        return byte_rows(pg19_texts["train"], byte_vocab, model.train_seq_len + 1, max_bytes)

    return make


def small_config(**kw) -> Config:
    base = dict(context_size=4, max_attractors=50_000, episodic_buffer_size=1024, holdout_every=8,
                holdout_size=512, rem_cycles=2, rem_pairs=16, knn_k=16, train_seq_multiple=16)
    return Config(**(base | kw))

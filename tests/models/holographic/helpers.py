"""Small holographic configs and pg19 byte rows for the family's tests."""

from __future__ import annotations

import torch

from nightshift.models.holographic import Config
from nightshift.models.protocol import Vocab


def byte_rows(texts: list[str], vocab: Vocab, row_len: int, max_bytes: int) -> torch.Tensor:
    """Documents as bytes + eot, concatenated and cut into rows (N, row_len) like the data reader does."""
    stream: list[int] = []
    for text in texts:
        stream += list(text.encode()[: max_bytes - len(stream)]) + [vocab.eot_id]
        if len(stream) >= max_bytes:
            break
    n = len(stream) // row_len
    return torch.tensor(stream[: n * row_len]).view(n, row_len)


def small_config(**kw) -> Config:
    base = dict(context_size=4, max_attractors=50_000, episodic_buffer_size=1024, holdout_every=8,
                holdout_size=512, rem_cycles=2, rem_pairs=16, knn_k=16, train_seq_multiple=16)
    return Config(**(base | kw))

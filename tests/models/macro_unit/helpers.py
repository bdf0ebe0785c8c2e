"""Small helpers shared by the macro-unit tests: rows from text, and bits per byte as the evaluator computes it."""

from __future__ import annotations

import math

import numpy as np
import torch

from nightshift.models.protocol import Vocab


def byte_rows(text: bytes, row_len: int, eot: int | None = None) -> torch.Tensor:
    """Cut bytes into (B, row_len) rows of byte ids (the reader's windows, without shuffling)."""
    ids = np.frombuffer(text, dtype=np.uint8).astype(np.int64)
    if eot is not None:
        ids = np.append(ids, eot)
    n = len(ids) // row_len * row_len
    return torch.from_numpy(ids[:n].reshape(-1, row_len))


def train(model, text: bytes, batch: int = 16) -> None:
    rows = byte_rows(text, model.train_seq_len + 1)
    for i in range(0, len(rows), batch):
        model.observe(rows[i : i + batch])


def bits_per_byte(model, docs: list[bytes], vocab: Vocab | None = None, encode=None) -> float:
    """sum -log p over each doc's tokens, scored as [eot] + tokens, / ln 2 / UTF-8 bytes."""
    vocab = vocab or model.vocab
    nats, n_bytes = 0.0, 0
    for doc in docs:
        toks = list(doc) if encode is None else encode(doc)
        seq = torch.tensor([vocab.eot_id, *toks], dtype=torch.long)[None]  # (1, n+1)
        nats -= model.score(seq).double().sum().item()
        n_bytes += len(doc)
    return nats / math.log(2) / n_bytes


def windowed_bits_per_byte(model, doc: bytes, stride: int) -> float:
    """Sliding windows as the evaluator cuts them: each new target keeps context_length tokens of left context."""
    seq = [model.vocab.eot_id, *doc]
    C = model.context_length
    nats = 0.0
    done = 0  # targets scored so far: seq[1 : done + 1]
    while done < len(doc):
        end = min(done + stride, len(doc))  # score targets done+1 .. end
        start = max(0, done + 1 - C)
        window = torch.tensor(seq[start : end + 1], dtype=torch.long)[None]
        s = model.score(window)[0]  # targets seq[start+1 .. end]
        nats -= s[(done + 1) - (start + 1) :].double().sum().item()
        done = end
    return nats / math.log(2) / len(doc)


SMALL = dict(max_order=5, max_entries_per_order=1 << 16, chunk_bytes=1 << 16, train_seq_len=1024,
             sample_bytes=1 << 16, holdout_bytes=1 << 14, holdout_every=16, candidates_per_round=64,
             max_candidates=512, promotion_rounds=2, horizon=512)

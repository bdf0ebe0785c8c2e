"""It learns: a few hundred Adam steps on the pg19 sample cut validation bits per byte well below untrained.

Bytes vocabulary here so the test stays fast on a shared 2-core box; the gpt2-token learning curve
(and the comparison with the transformer) is `benchmarks/attractor_learning_curve.py`.
"""

from __future__ import annotations

import math

import pytest
import torch

from nightshift.models.attractor import Config
from nightshift.models.protocol import Vocab

TRAIN_CHARS = 300_000  # per training book, first two books
VAL_CHARS = 8_000  # per validation book (all three)


@torch.no_grad()
def bits_per_byte(model, docs: list[bytes], eot: int) -> float:
    """Each document scored as [eot] + bytes, every byte once with its full W-byte left context."""
    model.eval()
    nats = 0.0
    for doc in docs:
        seq = torch.tensor([eot] + list(doc)).unsqueeze(0)  # (1, n+1)
        nats -= float(model.score(seq).double().sum())
    model.train()
    return nats / math.log(2) / sum(len(d) for d in docs)


@pytest.mark.slow
def test_attractor_learns_pg19_bytes(pg19_texts: dict[str, list[str]]) -> None:
    torch.manual_seed(0)
    vocab = Vocab.bytes_vocab()
    stream: list[int] = []
    for book in pg19_texts["train"][:2]:
        stream += list(book[:TRAIN_CHARS].encode("utf-8")) + [vocab.eot_id]
    data = torch.tensor(stream)
    val_docs = [book[:VAL_CHARS].encode("utf-8") for book in pg19_texts["validation"]]

    cfg = Config(d_model=64, n_waves=4, window=12, steps=4, gradients="unroll")
    model = cfg.build(vocab)
    untrained = bits_per_byte(model, val_docs, vocab.eot_id)

    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    W, B = cfg.window, 32
    for _ in range(500):
        starts = torch.randint(0, len(data) - W - 1, (B,), generator=gen)
        batch = data[starts[:, None] + torch.arange(W + 1)]  # (B, W+1)
        loss, _ = model(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    trained = bits_per_byte(model, val_docs, vocab.eot_id)
    print(f"attractor pg19 bytes: untrained {untrained:.3f} bpb -> trained {trained:.3f} bpb")
    assert trained < untrained - 2.0, (untrained, trained)
    assert trained < 5.0, trained

"""Generation that proposes whole macro-units and scores them with the byte model.

Each step proposes the `first_bytes` most likely next bytes and every unit
starting with one of them; a proposal u is scored by its mean per-byte
log-probability under the byte model, log P(u | context) / len(u), so a unit
competes with a single byte on how predictable its bytes are, not on its
length. The proposal is sampled from softmax(score / temperature) (optionally
top-k) and appended whole. This is a heuristic sampler over the byte model,
not an exact sample from it; scoring (bits per byte) never uses it.
"""

from __future__ import annotations

import numpy as np
import torch

from nightshift.models.macro_unit.byte_model import ByteModel
from nightshift.models.macro_unit.units import Codebook


def _proposals(book: Codebook, first: np.ndarray) -> list[bytes]:
    allowed = set(first.tolist())
    return [bytes([b]) for b in first.tolist()] + [u for u in book.units if u[0] in allowed]


def generate_bytes(
    model: ByteModel,
    book: Codebook,
    context: bytes,
    n_bytes: int,
    *,
    temperature: float,
    top_k: int | None,
    first_bytes: int,
    generator: torch.Generator | None,
) -> list[bytes]:
    """The proposals chosen, in order, until they cover `n_bytes` (the caller trims the last one)."""
    K = model.order
    out = bytearray()
    chosen: list[bytes] = []
    while len(out) < n_bytes:
        ctx = (context + bytes(out))[-K:] if K else b""
        x = np.frombuffer(ctx + b"\0", dtype=np.uint8)
        dist = model.distribution(x, np.minimum(np.arange(len(x)), K))[-1]  # (256,) next byte
        first = np.argsort(-dist, kind="stable")[:first_bytes]
        props = _proposals(book, first)
        # Score every proposal in one batch: ctx + u, log P of u's bytes only.
        seqs = [ctx + u for u in props]
        xs = np.frombuffer(b"".join(seqs), dtype=np.uint8)
        lens = np.array([len(s) for s in seqs])
        starts = np.cumsum(lens) - lens
        pos = np.arange(len(xs)) - np.repeat(starts, lens)  # offset inside each sequence
        lp = model.logp(xs, np.minimum(pos, K))
        own = pos >= len(ctx)  # the proposal's bytes, not the shared context
        per_prop = np.bincount(np.repeat(np.arange(len(props)), lens), weights=np.where(own, lp, 0.0))
        score = torch.from_numpy(per_prop / np.array([len(u) for u in props]))  # (P,) mean log-prob
        if temperature <= 1e-6:
            choice = int(torch.argmax(score))
        else:
            logits = score / temperature
            if top_k is not None and top_k < len(logits):
                kth = torch.topk(logits, top_k).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            choice = int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator))
        out += props[choice]
        chosen.append(props[choice])
    return chosen

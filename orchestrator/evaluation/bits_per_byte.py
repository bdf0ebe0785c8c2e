"""Bits per byte: the one metric that compares every family and every dataset size.

bpb = (total negative log-likelihood of the validation text, in bits) /
(its UTF-8 byte count). Each document is scored as [eot] + tokens, every
token exactly once, with as much left context as the model can use (strided
windows), never a mean of per-sequence perplexities. Ranks split documents
and all-reduce the two sums, so the figure does not depend on world size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from nightshift import collectives
from nightshift.models.protocol import LanguageModel

# Logits held at once by one scoring forward (rows x width x vocab): a gpt2-vocab batch of 16 x 256 windows is
# 206 M floats (824 MB, and as much again inside the loss), so batches are scored a few rows at a time.
MAX_LOGIT_ELEMENTS = 1 << 25


@dataclass(frozen=True, slots=True)
class EvalResult:
    bits_per_byte: float
    nats: float  # total NLL of the scored tokens
    n_bytes: int  # UTF-8 bytes of exactly the scored documents
    n_tokens: int
    n_docs: int
    seconds: float

    @property
    def loss(self) -> float:
        """Mean NLL per token in nats (for people used to cross-entropy)."""
        return self.nats / max(self.n_tokens, 1)

    def metrics(self, prefix: str = "val/") -> dict[str, float]:
        return {f"{prefix}bpb": self.bits_per_byte, f"{prefix}loss": self.loss,
                f"{prefix}bytes": float(self.n_bytes), f"{prefix}seconds": self.seconds}


def windows(n_tokens: int, context: int, window: int) -> Iterator[tuple[int, int, int]]:
    """Cover targets 1..n of seq = [eot] + tokens with windows of at most `window` input tokens.

    Yields (start, end, first_scored): the window is seq[start : end + 1] and
    scores targets first_scored..end (seq indices; target i sees seq[start:i]).
    Every target is scored exactly once. When window > context each new window
    starts `context` tokens before its first new target (full context); when
    window == context (a transformer) it keeps context // 2 tokens of overlap.
    """
    keep = max(1, context if window > context else context // 2)  # guaranteed left context of a new target
    scored = 0
    while scored < n_tokens:
        start = max(0, scored + 1 - keep) if scored else 0
        end = min(start + window, n_tokens)
        yield start, end, scored + 1
        scored = end


def _batches(docs: Iterable, eot_id: int, context: int, window: int, batch_size: int
             ) -> Iterator[tuple[Tensor, Tensor, int, int]]:
    """Yield (tokens (B, W+1), mask (B, W), bytes, docs) with right padding masked out."""
    rows: list[tuple[Tensor, Tensor]] = []
    n_bytes = n_docs = 0
    for doc in docs:
        seq = torch.cat([torch.tensor([eot_id]), torch.as_tensor(doc.tokens, dtype=torch.long)])
        n_bytes += int(doc.n_bytes)
        n_docs += 1
        for start, end, first in windows(len(seq) - 1, context, window):
            chunk = seq[start : end + 1]  # (L+1,)
            mask = torch.zeros(len(chunk) - 1, dtype=torch.bool)
            mask[first - start - 1 :] = True  # target seq index i sits at chunk position i - start - 1
            rows.append((chunk, mask))
            if len(rows) == batch_size:
                yield (*_pad(rows, eot_id), n_bytes, n_docs)
                rows, n_bytes, n_docs = [], 0, 0
    if rows or n_docs:
        yield (*_pad(rows, eot_id), n_bytes, n_docs) if rows else (None, None, n_bytes, n_docs)


def _pad(rows: list[tuple[Tensor, Tensor]], pad_id: int) -> tuple[Tensor, Tensor]:
    width = max(len(c) for c, _ in rows)
    tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width - 1), dtype=torch.bool)
    for i, (chunk, m) in enumerate(rows):
        tokens[i, : len(chunk)] = chunk
        mask[i, : len(m)] = m
    return tokens, mask


@torch.no_grad()
def bits_per_byte(
    model: LanguageModel,
    docs: Iterable,
    *,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    max_bytes: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> EvalResult:
    """Score validation documents (objects with .tokens and .n_bytes) and return bits per byte.

    `max_bytes` > 0 scores the first that many bytes of the split: documents in
    split order, the last one cut at the token boundary at or before the cap
    (whole tokens; their bytes are the denominator). The same prefix for every
    run, so capped evals still compare.
    Always float32: every family's `score` leaves any caller's autocast (see
    `models.protocol.float32`), so a GPU figure equals a CPU one.
    """
    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    selected = _take(docs, max_bytes, rank, world_size, model.vocab.token_bytes)
    nats = 0.0
    n_tokens = n_bytes = n_docs = 0
    for tokens, mask, b, d in _batches(selected, model.vocab.eot_id, model.context_length,
                                       max(model.eval_window, model.context_length), batch_size):
        n_bytes, n_docs = n_bytes + b, n_docs + d
        if tokens is None:
            continue
        rows = max(1, MAX_LOGIT_ELEMENTS // (tokens.shape[1] * model.vocab.size))
        for lo in range(0, tokens.shape[0], rows):  # bounded memory; the sums are the same
            part, keep = tokens[lo : lo + rows].to(device), mask[lo : lo + rows].to(device)  # (b, W+1), (b, W)
            logp = model.score(part)  # (b, W)
            nats -= float(logp.double()[keep].sum())
            n_tokens += int(keep.sum())
    if collectives.group_size() == world_size:  # ranks split the documents: sum their sums
        sums = collectives.all_reduce(torch.tensor([nats, n_tokens, n_bytes, n_docs], dtype=torch.float64))
        nats, n_tokens, n_bytes, n_docs = float(sums[0]), int(sums[1]), int(sums[2]), int(sums[3])
    model.train(was_training)
    bpb = nats / math.log(2) / n_bytes if n_bytes else float("nan")
    return EvalResult(bits_per_byte=bpb, nats=nats, n_bytes=n_bytes, n_tokens=n_tokens,
                      n_docs=n_docs, seconds=time.perf_counter() - t0)


@dataclass(frozen=True, slots=True)
class _Cut:
    """The first tokens of a document that fit the byte cap (same fields as a validation document)."""

    tokens: Tensor  # (t,)
    n_bytes: int


def _take(docs: Iterable, max_bytes: int, rank: int, world_size: int,
          token_bytes: tuple[bytes, ...] = ()) -> Iterator:
    """This rank's share of the first `max_bytes` bytes (0: all): whole documents, then the last one cut at
    a token boundary. Without the vocabulary's token bytes the last document is kept whole."""
    total = 0
    for i, doc in enumerate(docs):
        if max_bytes and total >= max_bytes:
            return
        n = int(doc.n_bytes)
        if max_bytes and total + n > max_bytes and token_bytes:
            doc = _cut(doc, max_bytes - total, token_bytes)
            n = max_bytes  # nothing after a cut document is scored
        total += n
        if i % world_size == rank and int(doc.n_bytes):
            yield doc


def _cut(doc: object, budget: int, token_bytes: tuple[bytes, ...]) -> _Cut:
    tokens = torch.as_tensor(doc.tokens, dtype=torch.long)  # (T,)
    lengths = torch.tensor([len(token_bytes[t]) for t in tokens.tolist()], dtype=torch.long)  # (T,)
    keep = int((lengths.cumsum(0) <= budget).sum())
    return _Cut(tokens[:keep], int(lengths[:keep].sum()))


@torch.no_grad()
def online_bits_per_byte(model: LanguageModel, docs: Iterable, *, device: torch.device | str = "cpu",
                         max_bytes: int = 0) -> EvalResult:
    """Prequential bits per byte of a memory family: score each window, then observe what was just scored.

    The protocol of the reference compressors (they learn from the validation
    text while coding it), so a memory family compares with PPMd like for like.
    Scored tokens join a stream ([eot] + tokens per document, as in training)
    that is observed in training windows of train_seq_len + 1 tokens, so a token
    is learned at most one window after it was scored. The model is changed:
    use a copy loaded for the purpose (as `nightshift eval --online` does).
    """
    if model.trains_by_gradient:
        raise ValueError(f"{model.family}: online evaluation observes the validation text, which only memory "
                         "families do; score gradient families with the ordinary (frozen) evaluation")
    t0 = time.perf_counter()
    model.eval()
    context, width, piece = model.context_length, max(model.eval_window, model.context_length), model.train_seq_len + 1
    stream: list[int] = []
    nats, n_tokens, n_bytes, n_docs = 0.0, 0, 0, 0
    for doc in _take(docs, max_bytes, 0, 1, model.vocab.token_bytes):
        seq = torch.cat([torch.tensor([model.vocab.eot_id]), torch.as_tensor(doc.tokens, dtype=torch.long)])
        n_bytes, n_docs = n_bytes + int(doc.n_bytes), n_docs + 1
        stream.append(model.vocab.eot_id)
        for start, end, first in windows(len(seq) - 1, context, width):
            logp = model.score(seq[start : end + 1].unsqueeze(0).to(device))[0]  # (L,)
            nats -= float(logp[first - start - 1 :].double().sum())
            n_tokens += end - first + 1
            stream.extend(seq[first : end + 1].tolist())
            while len(stream) >= piece:  # consecutive windows overlapping by one token, like the train reader
                model.observe(torch.tensor([stream[:piece]], dtype=torch.long, device=device))  # (1, T+1)
                del stream[: piece - 1]
    bpb = nats / math.log(2) / n_bytes if n_bytes else float("nan")
    return EvalResult(bits_per_byte=bpb, nats=nats, n_bytes=n_bytes, n_tokens=n_tokens, n_docs=n_docs,
                      seconds=time.perf_counter() - t0)

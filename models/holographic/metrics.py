"""The metrics users of the original expect, computed honestly.

- retrieval accuracy: exact top-1 on windows that were stored (the nearest stored key's
  next token, and the model's argmax), next to a most-frequent-token baseline;
- generalization: top-1 of the model on unseen (validation) windows, next to the same baseline;
- vorticity discriminability: signature cosine of same-structure pairs (two tokens substituted)
  vs word-order swaps (the same two positions exchanged), and the AUC separating them;
- bits per byte: the evaluator's recipe (documents prefixed with eot, windows of at most
  context_length + 1 tokens with a stride, each target scored once), refused for a lossy tokenizer.
  Positions near a window's start have fewer than context_size tokens of left context; their
  short-window keys rarely match stored full windows, so they fall back to the bigram.
  `full_context_windows` gives the stride at which no position is cut short.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from nightshift.models.errors import ModelConfigError
from nightshift.models.holographic import context
from nightshift.models.holographic.model import HolographicModel
from nightshift.models.holographic.predict import full_probs

log = logging.getLogger(__name__)


def _windows(tokens: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Rows (B, L) -> full-window end positions mask-free: (contexts (M, n), targets (M,))."""
    ctx = tokens.unfold(1, n, 1)[:, :-1]  # (B, L-n, n)
    return ctx.reshape(-1, n), tokens[:, n:].reshape(-1)


@torch.no_grad()
def top1(model: HolographicModel, tokens: Tensor, max_windows: int = 4096) -> dict[str, float]:
    """Top-1 accuracy on the full windows of `tokens` (B, L): nearest neighbour, model argmax, baseline."""
    n = model.config.context_size  # the key's window (reading memory plays no part here)
    ctx, y = _windows(tokens.long().cpu(), n)
    ctx, y = ctx[:max_windows], y[:max_windows]
    keys, _, sigs = model.layout.features(model.embeddings, ctx.to(model.embeddings.device))
    keys, sigs, prev = keys[:, -1], sigs[:, -1], ctx[:, -1]
    model.ensure_fitted()
    mem = model.memory
    correct_nn = correct_model = 0
    for s in range(0, y.shape[0], 512):
        ev = model.evidence(keys[s : s + 512], sigs[s : s + 512], prev[s : s + 512])
        if ev.targets.shape[1]:
            correct_nn += int((ev.targets[:, 0] == y[s : s + 512]).sum())
        pred = full_probs(ev, model.mix, mem.backoff).argmax(1)
        correct_model += int((pred == y[s : s + 512]).sum())
    most_frequent = int(mem.backoff.unigram.argmax())
    m = max(1, y.shape[0])
    return {
        "nearest_top1": correct_nn / m,
        "model_top1": correct_model / m,
        "most_frequent_top1": float((y == most_frequent).float().mean()) if y.numel() else 0.0,
        "windows": float(y.shape[0]),
    }


VORTICITY_TOKENS = 1 << 18  # signature tokens one vorticity test may cost: 256 pairs up to context 1024


def vorticity_pairs(context_size: int, most: int = 256) -> int:
    """Pairs of the vorticity test, bounded by VORTICITY_TOKENS: at context 4096 (the giant run) a sleep or an
    evaluation would otherwise spend seconds on 256 x 3 signatures of 4096 tokens, a diagnostic outweighing the
    phase it reports on. At least 16 pairs, so the AUC stays defined (its noise grows: +-0.1 at 16)."""
    return max(16, min(most, VORTICITY_TOKENS // max(1, context_size)))


@torch.no_grad()
def vorticity_discriminability(
    model: HolographicModel, tokens: Tensor, pairs: int = 512, seed: int = 0
) -> dict[str, float]:
    """Signature cosine for same-structure pairs vs word-order swaps on real windows of `tokens` (B, L).

    The signature covers the key's window (context_size tokens). Logged at every sleep (on a uniform
    sample of training windows) as vorticity_same_structure_cos / vorticity_order_swap_cos / vorticity_auc.
    """
    n = model.config.context_size
    if n < 3:
        raise ValueError("vorticity discriminability needs context_size >= 3")
    gen = torch.Generator().manual_seed(seed)
    ctx, _ = _windows(tokens.long().cpu(), n)
    base = ctx[torch.randint(0, ctx.shape[0], (pairs,), generator=gen)]  # (P, n)
    i = torch.randint(0, n - 2, (pairs,), generator=gen)
    j = i + 2 + torch.randint(0, n - 2, (pairs,), generator=gen) % (n - 2 - i).clamp_min(1)  # j >= i + 2
    j = j.clamp_max(n - 1)
    rows = torch.arange(pairs)
    swapped = base.clone()
    swapped[rows, i], swapped[rows, j] = base[rows, j], base[rows, i]
    substituted = base.clone()
    substituted[rows, i] = torch.randint(0, model.vocab.size, (pairs,), generator=gen)
    substituted[rows, j] = torch.randint(0, model.vocab.size, (pairs,), generator=gen)

    def sig(t: Tensor) -> Tensor:
        emb = model.embeddings[t.to(model.embeddings.device)]  # (P, n, 4, 4)
        return context.unit(context.sliding_signatures(emb, n)[:, -1]).cpu()  # (P, 16)

    s0 = sig(base)
    same = (s0 * sig(substituted)).sum(1)  # (P,)
    swap = (s0 * sig(swapped)).sum(1)
    auc = float((same[:, None] > swap[None, :]).float().mean() + 0.5 * (same[:, None] == swap[None, :]).float().mean())
    return {"same_structure_cos": float(same.mean()), "order_swap_cos": float(swap.mean()), "auc": auc}


def eval_windows(doc: Sequence[int], n: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, end, first_new) windows of <= n + 1 tokens: targets first_new..end-1, each scored once."""
    out, start, done = [], 0, 0  # done = last target index already scored
    length = len(doc)
    while done < length - 1:
        end = min(start + n + 1, length)
        out.append((start, end, done + 1))
        done = end - 1
        start = max(0, end - 1 - n + stride) if end < length else length
        start = min(start, done)  # keep left context contiguous with what is left to score
    return out


def full_context_windows(model: HolographicModel, multiple: int = 16) -> tuple[int, int]:
    """(window, stride) giving every scored position its full context_size tokens of left context.

    The model only reads the last context_size tokens, so long windows with this stride score
    exactly what stride-1 windows of context_size + 1 tokens would, at 1/context_size the cost.
    """
    n = model.context_length
    window = multiple * n
    return window, window + 1 - n


@torch.no_grad()
def bits_per_byte(
    model: HolographicModel, docs: Sequence[Sequence[int]], *, window: int | None = None,
    stride: int | None = None, batch_size: int = 64,
) -> float:
    """Bits per UTF-8 byte of documents (token lists without eot; eot is prefixed here).

    Windows hold at most `window` + 1 tokens (default context_length, as the evaluator does) and
    advance by `stride` (default window // 2); each target is scored once.
    """
    vocab = model.vocab
    if not vocab.lossless:
        log.warning("bits per byte refused: tokenizer %r is not lossless", vocab.name)
        raise ModelConfigError(f"bits per byte needs a lossless tokenizer; {vocab.name!r} is not")
    window = window or model.context_length
    stride = stride or max(1, window // 2)
    total_nats, total_bytes = 0.0, 0
    jobs: list[tuple[Tensor, int, int]] = []  # (window tokens, first scored offset, count)
    for doc in docs:
        toks = [vocab.eot_id, *doc]
        total_bytes += sum(len(vocab.token_bytes[t]) for t in doc)
        for start, end, first in eval_windows(toks, window, stride):
            jobs.append((torch.tensor(toks[start:end]), first - start - 1, end - first))
    for s in range(0, len(jobs), batch_size):
        part = jobs[s : s + batch_size]
        width = max(w.numel() for w, _, _ in part)
        batch = torch.full((len(part), width), vocab.eot_id, dtype=torch.long)  # right padding
        for r, (w, _, _) in enumerate(part):
            batch[r, : w.numel()] = w
        logp = model.score(batch)  # (b, width - 1)
        for r, (_, off, cnt) in enumerate(part):
            total_nats -= float(logp[r, off : off + cnt].double().sum())
    return total_nats / math.log(2) / max(1, total_bytes)

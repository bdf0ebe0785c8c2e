"""Smoothed bigram/unigram backoff: gives every token a non-zero probability.

p_uni(v) = (c(v) + 1) / (N + V)                       (add-one: never zero)
p_bo(v | a) = (c(a, v) + beta p_uni(v)) / (c(a) + beta)   (Dirichlet smoothing)

Bigram counts are sparse (a sorted array of pair codes a*V + v and their
counts) so a 50k-token vocabulary costs memory in proportion to the pairs
seen, not V^2. New pairs are appended to a pending list and folded in
lazily (sorting is the expensive part; doing it per batch would dominate
observe()). In DDP a rank's new pairs stay apart ("unsynced") until
synchronize() all-gathers them, so every rank always queries the same counts.
"""

from __future__ import annotations

import torch
from torch import Tensor

CONSOLIDATE_AT = 1 << 23  # pending pair codes before an eager fold


def _fold(codes: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
    uniq, inv = torch.unique(codes, return_inverse=True)
    total = torch.zeros(uniq.shape[0], dtype=torch.long).index_add_(0, inv, counts)
    return uniq, total


class BigramBackoff:
    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.unigram = torch.zeros(vocab_size, dtype=torch.long)  # c(v) as a next token
        self.context = torch.zeros(vocab_size, dtype=torch.long)  # c(a) as a previous token
        self.codes = torch.zeros(0, dtype=torch.long)  # sorted unique a*V + v
        self.counts = torch.zeros(0, dtype=torch.long)
        self.pending: list[Tensor] = []  # counted, not yet sorted into codes/counts
        self.pending_size = 0
        self.unsynced_codes: list[Tensor] = []  # DDP: this rank's pairs since the last sync
        self.unsynced_uni = torch.zeros(vocab_size, dtype=torch.long)
        self.unsynced_ctx = torch.zeros(vocab_size, dtype=torch.long)

    # ------------------------------------------------------------ counting
    def add(self, prev: Tensor, nxt: Tensor, *, synced: bool = True) -> None:
        """Count the pairs (prev[i] -> nxt[i]).

        synced=False (DDP) parks them until `take_unsynced`, so queries on this
        rank keep using exactly the counts every rank shares.
        """
        prev, nxt = prev.reshape(-1).long().cpu(), nxt.reshape(-1).long().cpu()  # counts live on the host
        uni = torch.bincount(nxt, minlength=self.vocab_size)
        ctx = torch.bincount(prev, minlength=self.vocab_size)
        codes = prev * self.vocab_size + nxt
        if synced:
            self.merge(codes, None, uni, ctx)
        else:
            self.unsynced_uni += uni
            self.unsynced_ctx += ctx
            self.unsynced_codes.append(codes)

    def take_unsynced(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(pair codes, their counts, unigram delta, context delta) parked by add(synced=False); cleared."""
        codes = torch.cat(self.unsynced_codes) if self.unsynced_codes else torch.zeros(0, dtype=torch.long)
        uniq, cnt = torch.unique(codes, return_counts=True)
        out = (uniq, cnt, self.unsynced_uni, self.unsynced_ctx)
        self.unsynced_codes = []
        self.unsynced_uni = torch.zeros(self.vocab_size, dtype=torch.long)
        self.unsynced_ctx = torch.zeros(self.vocab_size, dtype=torch.long)
        return out

    def merge(self, codes: Tensor, counts: Tensor | None, uni: Tensor, ctx: Tensor) -> None:
        """Fold counts in (pair codes are sorted lazily: folding per batch would dominate observe)."""
        self.unigram += uni
        self.context += ctx
        if counts is not None:
            codes = codes.repeat_interleave(counts)
        self.pending.append(codes)
        self.pending_size += codes.numel()
        if self.pending_size >= CONSOLIDATE_AT:
            self.consolidate()

    def consolidate(self) -> None:
        if self.pending:
            all_codes = torch.cat(self.pending)
            self.pending, self.pending_size = [], 0
            uniq, cnt = torch.unique(all_codes, return_counts=True)
            self.codes, self.counts = _fold(torch.cat([self.codes, uniq]), torch.cat([self.counts, cnt]))

    # ------------------------------------------------------------ probabilities
    def unigram_probs(self) -> Tensor:
        total = float(self.unigram.sum())
        return (self.unigram.double() + 1.0) / (total + self.vocab_size)  # (V,)

    def pair_counts(self, prev: Tensor, nxt: Tensor) -> Tensor:
        """c(prev, nxt) for matching shapes."""
        self.consolidate()
        if self.codes.numel() == 0:
            return torch.zeros(prev.shape, dtype=torch.float64)
        q = prev.long() * self.vocab_size + nxt.long()
        pos = torch.searchsorted(self.codes, q).clamp_max(self.codes.numel() - 1)
        hit = self.codes[pos] == q
        return torch.where(hit, self.counts[pos], 0).double()

    def prob(self, prev: Tensor, nxt: Tensor, beta: float) -> Tensor:
        """p_bo(nxt | prev), float64, same shape as the inputs."""
        uni = self.unigram_probs()
        num = self.pair_counts(prev, nxt) + beta * uni[nxt.long()]
        return num / (self.context[prev.long()].double() + beta)

    def full(self, prev: Tensor, beta: float) -> Tensor:
        """prev (Q,) -> (Q, V) float64 distributions p_bo(. | prev)."""
        self.consolidate()
        prev = prev.long()
        out = (beta * self.unigram_probs()).expand(prev.shape[0], -1).clone()  # (Q, V)
        if self.codes.numel():
            lo = torch.searchsorted(self.codes, prev * self.vocab_size)
            hi = torch.searchsorted(self.codes, (prev + 1) * self.vocab_size)
            lengths = hi - lo  # (Q,)
            row = torch.repeat_interleave(torch.arange(prev.shape[0]), lengths)
            start = torch.repeat_interleave(lo - torch.cumsum(lengths, 0) + lengths, lengths)
            flat = start + torch.arange(int(lengths.sum()))  # index into codes for every (row, entry)
            out.index_put_((row, self.codes[flat] % self.vocab_size), self.counts[flat].double(), accumulate=True)
        return out / (self.context[prev].double() + beta)[:, None]

    # ------------------------------------------------------------ state
    def state(self) -> dict:
        self.consolidate()
        return {"unigram": self.unigram.clone(), "context": self.context.clone(),
                "codes": self.codes.clone(), "counts": self.counts.clone()}

    def load(self, state: dict) -> None:
        self.unigram = state["unigram"].clone()
        self.context = state["context"].clone()
        self.codes = state["codes"].clone()
        self.counts = state["counts"].clone()
        self.pending, self.pending_size = [], 0
        self.unsynced_codes = []
        self.unsynced_uni.zero_()
        self.unsynced_ctx.zero_()

    def nbytes(self) -> int:
        return 8 * (2 * self.vocab_size + 2 * self.codes.numel() + self.pending_size)

"""Bits per byte: exact on models whose answer is known in closed form."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from nightshift.models.protocol import LanguageModel, Vocab
from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte, windows


@dataclass
class Doc:
    tokens: np.ndarray
    n_bytes: int


class Uniform(LanguageModel):
    """p = 1/V everywhere: bpb must be n_tokens * log2(V) / n_bytes exactly."""

    def __init__(self, vocab: Vocab, context: int, window: int) -> None:
        super().__init__(vocab)
        self._c, self._w = context, window
        self.calls: list[tuple[int, int]] = []

    @property
    def context_length(self) -> int:
        return self._c

    @property
    def eval_window(self) -> int:
        return self._w

    def log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        assert tokens.shape[1] <= self._w
        self.calls.append(tuple(tokens.shape))
        return torch.full((*tokens.shape, self.vocab.size), -math.log(self.vocab.size))


class Copycat(LanguageModel):
    """Predicts 'same as the token `context` back' with p=0.5 when it can see that far, else uniform.

    Scores reveal whether every target got its full left context.
    """

    def __init__(self, vocab: Vocab, context: int, window: int) -> None:
        super().__init__(vocab)
        self._c, self._w = context, window

    @property
    def context_length(self) -> int:
        return self._c

    @property
    def eval_window(self) -> int:
        return self._w

    def log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        B, T = tokens.shape
        V = self.vocab.size
        out = torch.full((B, T, V), -math.log(V))
        for t in range(self._c - 1, T):
            src = tokens[:, t - self._c + 1]
            out[:, t] = math.log(0.5 / (V - 1))
            out[torch.arange(B), t, src] = math.log(0.5)
        return out


def test_windows_score_every_target_once_with_the_promised_context() -> None:
    for n, c, w in itertools.product(range(1, 25), range(1, 7), range(1, 15)):
        if w < c:
            continue
        got = list(windows(n, c, w))
        targets = [i for _, end, first in got for i in range(first, end + 1)]
        assert targets == list(range(1, n + 1))
        keep = c if w > c else max(1, c // 2)
        for start, end, first in got:
            assert end - start <= w
            assert first - start >= min(keep, first)


@pytest.mark.parametrize("context,window", [(4, 4), (4, 16), (1, 1), (8, 9)])
def test_uniform_model_gives_exact_bpb(context, window) -> None:
    vocab = Vocab.bytes_vocab()
    rng = np.random.default_rng(0)
    docs = [Doc(rng.integers(0, 256, n), n) for n in (1, 5, 37, 100)]
    res = bits_per_byte(Uniform(vocab, context, window), docs, batch_size=3)
    n = sum(len(d.tokens) for d in docs)
    assert res.n_tokens == n and res.n_bytes == n and res.n_docs == 4
    assert res.bits_per_byte == pytest.approx(math.log2(257), rel=1e-9)


def test_bytes_not_tokens_are_the_denominator() -> None:
    vocab = Vocab.bytes_vocab()
    docs = [Doc(np.arange(10) % 256, 40)]  # e.g. a BPE doc: 10 tokens covering 40 bytes
    res = bits_per_byte(Uniform(vocab, 4, 8), docs)
    assert res.bits_per_byte == pytest.approx(10 * math.log2(257) / 40)


def test_max_bytes_scores_exactly_the_first_n_bytes() -> None:
    """Whole documents, then the last one cut: `eval --max-bytes 2000` scores 2,000 bytes, not whole docs."""
    docs = [Doc(np.zeros(10, dtype=np.int64), 10) for _ in range(5)]
    res = bits_per_byte(Uniform(Vocab.bytes_vocab(), 4, 4), docs, max_bytes=25)
    assert res.n_docs == 3 and res.n_bytes == 25 and res.n_tokens == 25
    assert res.bits_per_byte == pytest.approx(math.log2(257))


def test_max_bytes_cuts_at_a_token_boundary() -> None:
    """Multi-byte tokens: the cut keeps whole tokens, and their bytes are the denominator."""
    vocab = Vocab("toy", 4, 3, (b"ab", b"cde", b"f", b""))
    docs = [Doc(np.array([0, 1, 2, 1]), 9)]  # ab cde f cde
    res = bits_per_byte(Uniform(vocab, 4, 4), docs, max_bytes=7)
    assert (res.n_tokens, res.n_bytes) == (3, 6)  # "ab" "cde" "f" = 6 bytes; the next "cde" would make 9 > 7


@pytest.mark.parametrize("window", [3, 5, 12])
def test_full_context_when_the_window_allows_it(window) -> None:
    """Copycat(context 3) predicts 'the token 3 back'; with window > context every target sees it."""
    vocab = Vocab.bytes_vocab()
    seq = np.tile(np.arange(3), 30)  # period 3
    n = len(seq)
    res = bits_per_byte(Copycat(vocab, 3, window), [Doc(seq, n)])
    # scored sequence is [eot] + seq: targets 1, 2 lack history (uniform); target 3 looks back at eot (a miss);
    # every later target is a hit (1 bit) - but only if its window really reaches 3 tokens back
    miss = math.log2((257 - 1) / 0.5)
    full = (2 * math.log2(257) + miss + (n - 3) * 1.0) / n
    if window > 3:
        assert res.bits_per_byte == pytest.approx(full, rel=1e-6)  # float32 log-probs
    else:  # window == context: overlap of context // 2, so some targets lose the history they need
        assert res.bits_per_byte > full + 0.1

"""Sliding-window keys: the O(1)-per-window block aggregation equals the direct product."""

from __future__ import annotations

import pytest
import torch

from nightshift.models.holographic import algebra as A
from nightshift.models.holographic import context as C


@pytest.mark.parametrize(("n", "length"), [(1, 9), (3, 20), (5, 5), (7, 40), (16, 50), (40, 30), (150, 420)])
def test_keys_equal_direct_product(n, length):
    emb = A.token_embeddings(100, 0.3, seed=0)
    tokens = torch.randint(0, 100, (3, length), generator=torch.Generator().manual_seed(n))
    fast, _ = C.keys_from_products(C.sliding_products(emb[tokens], n))
    slow, _ = C.keys_from_products(C.direct_products(emb[tokens], n))
    assert torch.allclose(fast.double(), slow, atol=2e-5)


def test_keys_at_context_4096_stay_finite_and_match_direct():
    n, length = 4096, 9000
    emb = A.token_embeddings(300, 0.3, seed=0)
    tokens = torch.randint(0, 300, (1, length), generator=torch.Generator().manual_seed(0))
    e = emb[tokens]
    fast, norms = C.keys_from_products(C.sliding_products(e, n))
    assert bool(torch.isfinite(fast).all()) and bool((norms > 0).all())
    for t in (n - 1, n, 6000, length - 1):  # windows spanning two blocks and a whole block
        m = e[0, t - n + 1].double()
        for i in range(t - n + 2, t + 1):
            m = A.frobenius_normalize(m @ e[0, i].double())
        direct, _ = C.keys_from_products(m)
        assert torch.allclose(fast[0, t].double(), direct, atol=1e-4)


def test_row_start_uses_the_shorter_window():
    emb = A.token_embeddings(50, 0.3, seed=0)
    tokens = torch.randint(0, 50, (2, 12))
    keys, _, _ = C.window_features(emb, tokens, 8)
    for t in range(8):
        short, _, _ = C.window_features(emb, tokens[:, : t + 1], t + 1)
        assert torch.allclose(keys[:, t], short[:, -1], atol=1e-5)


def test_key_depends_on_order():
    emb = A.token_embeddings(50, 0.3, seed=0)
    a = torch.tensor([[1, 2, 3, 4]])
    b = torch.tensor([[4, 3, 2, 1]])
    ka, _, _ = C.window_features(emb, a, 4)
    kb, _, _ = C.window_features(emb, b, 4)
    assert float((ka[0, -1] * kb[0, -1]).sum()) < 0.9999


@pytest.mark.parametrize("n", [1, 4, 13])
def test_signatures_equal_direct_sum(n):
    emb = A.token_embeddings(60, 0.3, seed=3)
    tokens = torch.randint(0, 60, (2, 30), generator=torch.Generator().manual_seed(1))
    sig = C.sliding_signatures(emb[tokens], n)
    for b in range(2):
        for t in (0, n - 1, 17, 29):
            window = emb[tokens[b, max(0, t - n + 1) : t + 1]].double()
            assert torch.allclose(sig[b, t].double(), C.direct_signature(window), atol=1e-5)
    reversed_sig = C.direct_signature(emb[tokens[0, :6].flip(0)].double())
    assert torch.allclose(reversed_sig, -C.direct_signature(emb[tokens[0, :6]].double()), atol=1e-6)

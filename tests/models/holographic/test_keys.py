"""Multi-scale suffix keys: locality (shared recent context -> near), exact match depth, the faithful key kept."""

from __future__ import annotations

import torch

from nightshift.models.holographic import algebra as A
from nightshift.models.holographic import context as C
from nightshift.models.holographic.keys import KeyLayout

SCALES = (1, 2, 3, 4, 6, 8, 16, 32)
V = 5000


def _pairs(shared: int, trials: int, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) rows of n tokens: b = a on the last `shared` positions, independent before."""
    a = torch.randint(0, V, (trials, n), generator=gen)
    b = torch.randint(0, V, (trials, n), generator=gen)
    if shared:
        b[:, n - shared :] = a[:, n - shared :]
    # a token just before the shared suffix must differ, or the suffix would be longer by chance
    if shared < n:
        same = b[:, n - shared - 1] == a[:, n - shared - 1]
        b[same, n - shared - 1] = (a[same, n - shared - 1] + 1) % V
    return a, b


def _last_keys(layout: KeyLayout, emb: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    keys, _, _ = layout.features(emb, rows)
    return keys[:, -1]  # (N, D)


def test_shared_suffix_is_nearer_than_random_and_monotone_in_its_length():
    layout = KeyLayout.suffixes(SCALES, 0.8)
    emb = A.token_embeddings(V, 1.0, seed=0)
    gen = torch.Generator().manual_seed(0)
    means = []
    for shared in (0, 1, 2, 3, 4, 6, 8, 16, 32):
        a, b = _pairs(shared, 400, 40, gen)
        means.append(float((_last_keys(layout, emb, a) * _last_keys(layout, emb, b)).sum(1).mean()))
    random_pairs = means[0]
    assert all(m > random_pairs + 0.05 for m in means[1:]), means
    assert all(later > earlier for earlier, later in zip(means, means[1:], strict=False)), means
    assert abs(means[-1] - 1.0) < 1e-5  # the whole window shared: the same key


def test_match_depth_counts_the_scales_the_shared_suffix_covers():
    layout = KeyLayout.suffixes(SCALES, 0.8)
    emb = A.token_embeddings(V, 1.0, seed=0)
    gen = torch.Generator().manual_seed(1)
    for shared, expected in [(0, 0), (1, 1), (2, 2), (5, 4), (7, 5), (8, 6), (20, 7), (32, 8)]:
        a, b = _pairs(shared, 50, 40, gen)
        depth = layout.depth(_last_keys(layout, emb, a), _last_keys(layout, emb, b)[:, None, :])  # (50, 1)
        assert depth.squeeze(1).tolist() == [float(expected)] * 50, (shared, depth.squeeze(1).tolist())


def test_faithful_key_is_the_spec_key_and_has_no_locality():
    emb = A.token_embeddings(V, 0.3, seed=0)
    layout = KeyLayout.faithful(64)
    rows = torch.randint(0, V, (3, 100), generator=torch.Generator().manual_seed(2))
    keys, norms, sigs = layout.features(emb, rows)
    ref = C.window_features(emb, rows, 64)
    assert torch.equal(keys, ref[0]) and torch.equal(norms, ref[1]) and torch.equal(sigs, ref[2])
    gen = torch.Generator().manual_seed(3)
    a, b = _pairs(32, 1000, 64, gen)
    ra, rb = _pairs(0, 1000, 64, gen)
    shared = float((_last_keys(layout, emb, a) * _last_keys(layout, emb, b)).sum(1).mean())
    random_pairs = float((_last_keys(layout, emb, ra) * _last_keys(layout, emb, rb)).sum(1).mean())
    assert abs(shared - random_pairs) < 0.08  # sharing the last 32 of 64 tokens: as far apart as random windows
    suffix = KeyLayout.suffixes((1, 2, 4, 8, 16, 32, 64), 0.8)
    near = float((_last_keys(suffix, emb, a) * _last_keys(suffix, emb, b)).sum(1).mean())
    assert near > random_pairs + 0.5  # the same pairs under suffix keys: neighbours


def test_suffix_blocks_are_sliding_products_of_each_scale():
    layout = KeyLayout.suffixes((1, 3, 8), 0.5)
    emb = A.token_embeddings(300, 1.0, seed=4)
    rows = torch.randint(0, 300, (2, 30), generator=torch.Generator().manual_seed(5))
    keys, _, _ = layout.features(emb, rows)
    blocks = layout.blocks(keys)  # (2, 30, 3, 16)
    for j, s in enumerate(layout.scales):
        direct, _ = C.keys_from_products(C.direct_products(emb[rows], s))  # (2, 30, 16)
        assert torch.allclose(blocks[:, :, j].double(), direct, atol=2e-5)
    odd = [i for i in range(16) if i not in (0, 5, 6, 7, 8, 9, 10, 15)]
    assert keys.shape[-1] == 3 * 8 and float(blocks[..., odd].abs().max()) == 0.0
    assert torch.allclose(keys.norm(dim=-1), torch.ones(2, 30), atol=1e-5)

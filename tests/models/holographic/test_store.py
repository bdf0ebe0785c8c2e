"""Bounded buffers (reservoir by priority, ring by recency) and exact kNN retrieval."""

from __future__ import annotations

import torch

from nightshift.models.holographic.store import Column, Reservoir, block_topk, knn

COLS = {"x": Column(0, torch.int32), "v": Column(3, torch.float32)}


def _rows(ids: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"x": ids.int(), "v": ids.float()[:, None].expand(-1, 3)}


def test_reservoir_keeps_the_highest_priorities_whatever_the_batching():
    gen = torch.Generator().manual_seed(0)
    prio = torch.rand(5000, generator=gen)
    ids = torch.arange(5000)
    one = Reservoir(300, COLS)
    one.offer(_rows(ids), prio)
    pieces = Reservoir(300, COLS)
    for s in range(0, 5000, 137):
        pieces.offer(_rows(ids[s : s + 137]), prio[s : s + 137])
    best = set(torch.topk(prio, 300).indices.tolist())
    assert set(one.view("x").tolist()) == best
    assert set(pieces.view("x").tolist()) == best
    assert one.size == pieces.size == 300
    # columns stay aligned with their row
    assert torch.equal(pieces.view("v")[:, 0].long(), pieces.view("x").long())
    assert torch.equal(pieces.priority[: pieces.size], prio[pieces.view("x").long()])


def test_merging_reservoirs_equals_one_reservoir():
    gen = torch.Generator().manual_seed(1)
    prio = torch.rand(2000, generator=gen)
    ids = torch.arange(2000)
    a, b, merged = Reservoir(100, COLS), Reservoir(100, COLS), Reservoir(100, COLS)
    a.offer(_rows(ids[:1200]), prio[:1200])  # pre-thinned locally, as a DDP rank does
    b.offer(_rows(ids[1200:]), prio[1200:])
    merged.extend(a)
    merged.extend(b)
    assert set(merged.view("x").tolist()) == set(torch.topk(prio, 100).indices.tolist())


def test_ring_keeps_the_most_recent():
    r = Reservoir(10, COLS, policy="ring")
    r.offer(_rows(torch.arange(7)), torch.zeros(7))
    r.offer(_rows(torch.arange(7, 13)), torch.zeros(6))
    assert sorted(r.view("x").tolist()) == list(range(3, 13))
    r.offer(_rows(torch.arange(100, 125)), torch.zeros(25))
    assert sorted(r.view("x").tolist()) == list(range(115, 125))


def test_state_round_trip():
    r = Reservoir(50, COLS)
    r.offer(_rows(torch.arange(80)), torch.rand(80))
    s = Reservoir(50, COLS)
    s.load(r.state())
    assert torch.equal(s.view("x"), r.view("x")) and s.size == r.size


def test_knn_is_exact():
    gen = torch.Generator().manual_seed(2)
    keys = torch.nn.functional.normalize(torch.randn(10_000, 16, generator=gen), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(300, 16, generator=gen), dim=1)
    queries[:5] = keys[[3, 77, 4000, 9999, 0]]
    brute_v, brute_i = torch.topk(queries @ keys.T, 10, dim=1)
    # small tiles exercise the group-maximum path and the ragged tail (10,000 = 9 tiles of 1,024 + 784)
    v, i = knn(queries, keys, 10, query_block=64, tile=1024, group=16)
    assert torch.allclose(v, brute_v)
    assert torch.equal(i[:, 0], brute_i[:, 0])
    assert i[:5, 0].tolist() == [3, 77, 4000, 9999, 0]
    assert torch.equal(i.sort(1).values, brute_i.sort(1).values)
    v_wide, i_wide = block_topk(queries @ keys.T, 10)  # two levels of block maxima on 10k columns
    assert torch.allclose(v_wide, brute_v)
    v_small, i_small = knn(queries, keys[:7], 10)
    assert v_small.shape == (300, 7)


def test_knn_finds_every_copy_of_a_repeated_key():
    """Ties: a key stored many times is returned as many times as k allows, wherever the copies sit."""
    gen = torch.Generator().manual_seed(5)
    keys = torch.nn.functional.normalize(torch.randn(20_000, 64, generator=gen), dim=1)
    copies = torch.tensor([5, 900, 901, 4096, 12_345, 19_999])
    keys[copies] = keys[7].clone()
    v, i = knn(keys[7:8], keys, 8, tile=2048, group=32)
    assert set(i[0, :7].tolist()) == set(copies.tolist()) | {7}
    assert torch.allclose(v[0, :7], torch.ones(7), atol=1e-6) and float(v[0, 7]) < 0.999


def test_retrieval_tiling_follows_the_device_and_the_gpu_sizes_stay_exact():
    from nightshift.models.holographic.store import CPU_TILING, GPU_SCORE_FLOATS, tiling_for

    assert tiling_for(torch.device("cpu"), 10_000_000) == CPU_TILING
    block, tile = tiling_for(torch.device("cuda", 0), 1_000_000)
    assert block * tile <= GPU_SCORE_FLOATS and tile % 32 == 0
    assert -(-1_000_000 // tile) * -(-4096 // block) <= 32  # launches per 4,096 queries at 1 M keys (CPU: ~31 k)
    gen = torch.Generator().manual_seed(0)
    keys = torch.randn(40_000, 16, generator=gen)
    queries = torch.randn(300, 16, generator=gen)
    small_block, small_tile = 64, 8192  # the GPU shape (few, wide tiles), at a size this machine runs quickly
    v, i = knn(queries, keys, 8, query_block=small_block, tile=small_tile)
    ref_v, _ = torch.topk(queries @ keys.T, 8, dim=1)
    assert torch.allclose(v, ref_v) and torch.allclose((queries[:, None] * keys[i]).sum(-1), ref_v, atol=1e-5)

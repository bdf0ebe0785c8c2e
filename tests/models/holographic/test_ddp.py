"""Two gloo ranks see different samples; after synchronize() + sleep() they hold identical memory."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nightshift.models.protocol import SleepContext, Vocab
from tests.models.holographic.helpers import small_config

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data(model) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    # a small Markov-ish byte stream: structure for sleep to find, no file access in workers
    words = [b"the ", b"cat ", b"sat ", b"on ", b"a ", b"mat ", b"dog ", b"ran ", b"far ", b"away. "]
    stream = b"".join(words[int(i)] for i in torch.randint(0, len(words), (6000,), generator=gen))
    length = model.train_seq_len + 1
    ids = torch.tensor(list(stream[: (len(stream) // length) * length])).view(-1, length)
    return ids


SUFFIX = dict(context_size=8, key_scales=(1, 2, 4, 8), vote="depth", reading_window=32, reading_k=4)


def _worker(rank: int, port: int, out_dir: str, flavor: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        extra = SUFFIX if flavor == "suffix" else {}
        model = small_config(max_attractors=4_000, episodic_buffer_size=512, holdout_every=4,
                             **extra).build(Vocab.bytes_vocab())
        rows = _data(model)
        mine = rows[rank::WORLD]  # every rank sees its own samples
        samples = 0
        for s in range(0, mine.shape[0] // 2, 4):
            samples += model.observe(mine[s : s + 4])["samples"]
        model.synchronize()
        metrics = model.sleep(SleepContext(step=10, rank=rank, world_size=WORLD))
        for s in range(mine.shape[0] // 2, mine.shape[0], 4):
            samples += model.observe(mine[s : s + 4])["samples"]
        model.synchronize()
        probe = rows[:4, :24]
        torch.save({"state": model.state_dict(), "score": model.score(probe), "local_samples": samples,
                    "metrics": metrics}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("flavor", ["faithful", "suffix"])
def test_two_gloo_ranks_hold_identical_memory(tmp_path, flavor):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(_free_port(), str(tmp_path), flavor), nprocs=WORLD, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert torch.equal(r0["score"], r1["score"])  # every rank predicts the same distribution
    mem0 = r0["state"]["_extra_state"]["memory"]
    mem1 = r1["state"]["_extra_state"]["memory"]
    _assert_same(mem0, mem1)
    assert len(mem0["protos"]["support"]) > 0  # sleep left (identical) prototypes
    assert {k: v for k, v in r0["metrics"].items() if k != "seconds"} == {
        k: v for k, v in r1["metrics"].items() if k != "seconds"}
    # memory merged both ranks' samples
    assert mem0["counters"]["samples"] == r0["local_samples"] + r1["local_samples"]
    assert mem0["store"]["size"] == min(4_000, mem0["counters"]["samples"])


def _assert_same(a, b, path=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path

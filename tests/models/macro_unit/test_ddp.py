"""DDP: counts merge across 2 gloo ranks, so every rank holds the same model after synchronize() + sleep()."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pyarrow.parquet as pq
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nightshift.models.macro_unit import Config
from nightshift.models.protocol import SleepContext, Vocab
from tests.models.macro_unit.helpers import SMALL, byte_rows

CONFIG = {**SMALL, "max_entries_per_order": 1 << 22, "train_seq_len": 512}  # caps not hit: merges are exact


def _text(pg19_dir: str) -> bytes:
    book = pq.read_table(Path(pg19_dir) / "validation.parquet", columns=["text"]).column("text")[0].as_py()
    return book.encode()[:160_000]


def _rank_rows(rows: torch.Tensor, rank: int) -> torch.Tensor:
    return rows[rank::2]  # each rank reads different rows (as a DistributedSampler would)


def _worker(rank: int, port: int, pg19_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model = Config(**CONFIG).build(Vocab.bytes_vocab())
        rows = _rank_rows(byte_rows(_text(pg19_dir), model.train_seq_len + 1), rank)
        for i in range(0, len(rows), 16):
            model.observe(rows[i : i + 16])
        model.synchronize()
        metrics = model.sleep(SleepContext(step=1, rank=rank, world_size=2))
        more = _rank_rows(byte_rows(_text(pg19_dir)[::-1], model.train_seq_len + 1), rank)  # a 2nd round
        model.observe(more)
        model.synchronize()
        torch.save({"state": model.state_dict(), "units": metrics["units"]}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_two_gloo_ranks_end_with_identical_memory_equal_to_one_process(pg19_dir: Path, tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(pg19_dir), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    s0, s1 = r0["state"]["_extra_state"], r1["state"]["_extra_state"]
    assert _same(s0, s1)  # counts, samples, units, statistics: identical on both ranks
    assert r0["units"] == r1["units"] > 0
    assert all(len(t["keys"]) == 0 for t in s0["delta"])  # nothing left unmerged

    # The merged memory is what ONE process gets from all the rows (sum of counts, union of samples).
    single = Config(**CONFIG).build(Vocab.bytes_vocab())
    rows = byte_rows(_text(str(pg19_dir)), single.train_seq_len + 1)
    for rank in (0, 1):
        part = _rank_rows(rows, rank)
        for i in range(0, len(part), 16):
            single.observe(part[i : i + 16])
    single.sleep(SleepContext(step=1))
    single.observe(byte_rows(_text(str(pg19_dir))[::-1], single.train_seq_len + 1))
    ref = single.state_dict()["_extra_state"]
    assert _same(ref["counts"], s0["counts"])
    assert ref["stats"] == s0["stats"]
    assert _same(ref["sample"], s0["sample"]) and _same(ref["heldout"], s0["heldout"])
    assert _same(ref["units"], s0["units"])

    # and a fresh model loaded from rank 0 predicts exactly like the single process
    loaded = Config(**CONFIG).build(Vocab.bytes_vocab())
    loaded.load_state_dict(r0["state"])
    doc = torch.tensor([[256, *_text(str(pg19_dir))[:3000]]])
    assert torch.equal(loaded.score(doc), single.score(doc))

"""Reader: disjoint equal ranks, determinism, exact resume, bounded memory, validation bytes, corruption."""

from __future__ import annotations

import hashlib
import tracemalloc

import numpy as np
import pytest
import tiktoken

from nightshift.pipelines.errors import DataError
from nightshift.pipelines.prepare import PrepareConfig, prepare
from nightshift.pipelines.reader import list_datasets, open_dataset
from nightshift.pipelines.sources import open_source
from nightshift.pipelines.split import PlanStats, plan_shards
from nightshift.pipelines.store import Store

SEQ, BATCH = 32, 8


@pytest.fixture(scope="module")
def fineweb_ds(shared_data, tmp_path_factory):
    """~1 MB of FineWeb in ~10 shards: small windows so a full epoch is quick to walk."""
    store = Store.open(str(tmp_path_factory.mktemp("reader-store")))
    config = PrepareConfig(source=f"local:{shared_data / 'fineweb' / 'fineweb_sample10BT_rows.parquet'}",
                           max_bytes=1_000_000, valid_bytes=100_000, shard_bytes=100_000)
    made = prepare(config, store, actors=0, progress=False)
    return open_dataset(store, made.dataset_id)


def _key(window: np.ndarray) -> bytes:
    return hashlib.sha256(window.astype(np.int64).tobytes()).digest()


def _epoch(ds, world_size: int, rank: int, seed: int = 0) -> list[np.ndarray]:
    reader = ds.train_reader(SEQ, BATCH, rank=rank, world_size=world_size, seed=seed)
    return [next(reader) for _ in range(reader.batches_per_epoch)]


def _all_windows(ds) -> list[bytes]:
    """Every training window straight from the shards, independently of the reader's indexing."""
    keys = []
    for entry in ds.shards("train"):
        stream = ds.load_shard(entry).stream(ds.eot_id)
        keys += [_key(stream[j * SEQ:j * SEQ + SEQ + 1]) for j in range((len(stream) - 1) // SEQ)]
    return keys


def test_ranks_are_disjoint_equal_and_cover_the_epoch(fineweb_ds):
    world = 3
    per_rank = [_epoch(fineweb_ds, world, r) for r in range(world)]
    readers = [fineweb_ds.train_reader(SEQ, BATCH, rank=r, world_size=world) for r in range(world)]
    assert len({r.batches_per_epoch for r in readers}) == 1
    assert all(len(b) == readers[0].batches_per_epoch for b in per_rank)
    seen = [_key(w) for batches in per_rank for b in batches for w in b]
    assert all(b.shape == (BATCH, SEQ + 1) and b.dtype == np.int64 for batches in per_rank for b in batches)
    everything = _all_windows(fineweb_ds)
    assert len(set(everything)) == len(everything)  # real text: every window is distinct
    assert len(seen) == len(set(seen))  # no window twice, across ranks
    assert set(seen) <= set(everything)
    assert len(everything) - len(seen) < world * BATCH  # only the tail that cannot fill a batch is dropped


def test_training_stream_is_each_document_then_end_of_text(fineweb_ds):
    cfg = fineweb_ds.manifest["config"]
    tasks = plan_shards(open_source(cfg["source"]), rule="hash", max_bytes=cfg["max_bytes"],
                        valid_bytes=cfg["valid_bytes"], shard_bytes=cfg["shard_bytes"],
                        valid_permille=cfg["valid_permille"], split_seed=cfg["split_seed"], stats=PlanStats())
    first = next(t for t in tasks if t.split == "train")
    enc = tiktoken.get_encoding("gpt2")
    expected = [i for text in first.texts for i in (*enc.encode_ordinary(text), enc.eot_token)]
    shard = fineweb_ds.load_shard(fineweb_ds.shards("train")[0])
    assert shard.doc_ids == first.doc_ids
    assert shard.stream(fineweb_ds.eot_id).tolist() == expected


def test_same_seed_same_batches_new_seed_or_epoch_new_order(fineweb_ds):
    a, b = _epoch(fineweb_ds, 2, 1, seed=5), _epoch(fineweb_ds, 2, 1, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = _epoch(fineweb_ds, 2, 1, seed=6)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    reader = fineweb_ds.train_reader(SEQ, BATCH, rank=1, world_size=2, seed=5)
    first = [next(reader) for _ in range(reader.batches_per_epoch)]
    second = [next(reader) for _ in range(reader.batches_per_epoch)]
    assert reader.state_dict()["epoch"] == 1
    assert not all(np.array_equal(x, y) for x, y in zip(first, second))


@pytest.mark.parametrize("stop", [1, 7, "epoch_end", "next_epoch"])
def test_resume_from_state_dict_repeats_and_skips_nothing(fineweb_ds, stop):
    reader = fineweb_ds.train_reader(SEQ, BATCH, rank=0, world_size=2, seed=3)
    n = reader.batches_per_epoch
    k = {"epoch_end": n, "next_epoch": n + 2}.get(stop, stop)
    for _ in range(k):
        next(reader)
    state = reader.state_dict()
    assert set(state) >= {"seed", "epoch", "batch"} and len(repr(state)) < 400
    expected = [next(reader) for _ in range(5)]
    fresh = fineweb_ds.train_reader(SEQ, BATCH, rank=0, world_size=2, seed=0)
    fresh.load_state_dict(state)
    assert all(np.array_equal(x, y) for x, y in zip(expected, [next(fresh) for _ in range(5)]))


def test_state_with_another_global_batch_is_refused(fineweb_ds):
    state = fineweb_ds.train_reader(SEQ, BATCH, world_size=2).state_dict()
    wanted = rf"global batch of {2 * BATCH} sequences \({BATCH} x 2 ranks\) but this reader has {BATCH}\b"
    with pytest.raises(DataError, match=wanted):
        fineweb_ds.train_reader(SEQ, BATCH).load_state_dict(state)
    with pytest.raises(DataError, match=r"seq_len"):
        fineweb_ds.train_reader(SEQ * 2, BATCH).load_state_dict(state)


def test_one_process_cursor_resumes_on_two_ranks_at_the_same_samples(fineweb_ds):
    """Start on a laptop, resume on 2 Ray workers: same global batch, split across ranks."""
    single = fineweb_ds.train_reader(SEQ, 2 * BATCH, seed=3)
    for _ in range(3):
        next(single)
    state = single.state_dict()
    expected = next(single)  # the next global batch of 2*BATCH sequences
    halves = []
    for rank in range(2):
        reader = fineweb_ds.train_reader(SEQ, BATCH, rank=rank, world_size=2, seed=3)
        reader.load_state_dict(state)
        halves.append(next(reader))
    got = {tuple(r) for h in halves for r in h.tolist()}
    assert got == {tuple(r) for r in expected.tolist()}


def test_memory_stays_bounded_to_a_couple_of_shards(fineweb_ds):
    shard_tokens = max(e["tokens"] + e["docs"] for e in fineweb_ds.shards("train"))
    total_tokens = sum(e["tokens"] + e["docs"] for e in fineweb_ds.shards("train"))
    assert total_tokens > 6 * shard_tokens
    reader = fineweb_ds.train_reader(SEQ, BATCH)
    tracemalloc.start()
    for _ in range(reader.batches_per_epoch):
        next(reader)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 * total_tokens  # the dataset as uint16 is 2 bytes a token; we never hold all of it


def test_validation_yields_every_token_once_with_its_bytes(pg19_small):
    store, _, made = pg19_small
    ds = open_dataset(store, made.dataset_id)
    docs = list(ds.validation_docs())
    totals = made.data["splits"]["validation"]["totals"]
    assert len(docs) == totals["docs"] and len({d.doc_id for d in docs}) == len(docs)
    assert sum(len(d.tokens) for d in docs) == totals["tokens"]
    assert sum(d.n_bytes for d in docs) == totals["bytes"] == ds.validation_bytes == 300_000
    tok = ds.tokenizer()
    for d in docs:
        assert d.tokens.dtype == np.int64 and tok.eot_id not in d.tokens
        assert len(tok.decode(d.tokens).encode("utf-8")) == d.n_bytes


def test_dataset_properties(pg19_small):
    store, config, made = pg19_small
    ds = open_dataset(store, made.dataset_id)
    assert (ds.id, ds.source, ds.tokenizer_name, ds.train_bytes) == (made.dataset_id, config.source, "gpt2", 1_500_000)
    assert ds.manifest == made.data
    listed = {d["id"]: d for d in list_datasets(store)}
    assert listed[made.dataset_id]["train_bytes"] == 1_500_000 and listed[made.dataset_id]["status"] == "complete"


def test_unknown_and_malformed_ids_say_how_to_find_datasets(pg19_small):
    store, _, made = pg19_small
    with pytest.raises(DataError, match=rf"no dataset 'pg19-1mb-gpt2-0123456789abcdef'.*{made.dataset_id}"):
        open_dataset(store, "pg19-1mb-gpt2-0123456789abcdef")
    with pytest.raises(DataError, match=r"invalid dataset id '\.\./etc'"):
        open_dataset(store, "../etc")


def test_altered_or_truncated_train_shard_names_the_shard_and_its_sha256(fineweb_ds, tmp_path):
    store = Store.open(str(tmp_path))
    src = fineweb_ds.store
    for name in ("manifest.json", *(e["path"] for e in fineweb_ds.shards("train"))):
        store.write_bytes(src.read_bytes("datasets", fineweb_ds.id, name), "datasets", fineweb_ds.id, name)
    entry = fineweb_ds.shards("train")[0]
    raw = bytearray(store.read_bytes("datasets", fineweb_ds.id, entry["path"]))
    raw[len(raw) // 2] ^= 0xFF
    store.write_bytes(bytes(raw), "datasets", fineweb_ds.id, entry["path"])
    ds = open_dataset(store, fineweb_ds.id)
    reader = ds.train_reader(SEQ, BATCH)
    with pytest.raises(DataError, match=rf"shard .*/train/00000\.arrow is truncated or altered.*{entry['sha256']}"):
        for _ in range(reader.batches_per_epoch):
            next(reader)


def test_too_small_for_the_batch_is_a_clear_error(fineweb_ds):
    with pytest.raises(DataError, match=r"too few for batch_size 4096"):
        fineweb_ds.train_reader(512, 4096)

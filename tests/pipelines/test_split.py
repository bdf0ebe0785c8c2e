"""Splits: validation depends on source + rule + valid_bytes only; exact byte caps; no doc in both splits."""

from __future__ import annotations

import pytest

from nightshift.pipelines.errors import DataError
from nightshift.pipelines.prepare import PrepareConfig, prepare
from nightshift.pipelines.reader import open_dataset
from nightshift.pipelines.sources import open_source
from nightshift.pipelines.split import PlanStats, hash_to_validation, plan_shards
from nightshift.pipelines.store import Store
from tests.pipelines.helpers import shard_hashes, write_jsonl


def _plan(source, **kw):
    stats = PlanStats()
    args = dict(rule="hash", max_bytes=10**9, valid_bytes=10**9, shard_bytes=50_000, valid_permille=50, split_seed=0)
    tasks = list(plan_shards(source, stats=stats, **(args | kw)))
    return tasks, stats


def _docs(tasks, split):
    return [(i, t) for task in tasks if task.split == split for i, t in zip(task.doc_ids, task.texts)]


@pytest.fixture(scope="module")
def fineweb(shared_data):
    return open_source(f"local:{shared_data / 'fineweb' / 'fineweb_sample10BT_rows.parquet'}")


def test_validation_is_the_same_for_every_max_bytes(fineweb):
    small, _ = _plan(fineweb, max_bytes=300_000, valid_bytes=150_000)
    large, _ = _plan(fineweb, max_bytes=1_200_000, valid_bytes=150_000)
    assert _docs(small, "validation") == _docs(large, "validation")
    assert sum(len(t.encode()) for _, t in _docs(small, "validation")) == 150_000
    assert len(_docs(large, "train")) > 2 * len(_docs(small, "train"))


def test_no_document_is_in_both_splits_and_assignment_follows_the_hash(fineweb):
    tasks, stats = _plan(fineweb, max_bytes=2_000_000, valid_bytes=200_000)
    train = {i for i, _ in _docs(tasks, "train")}
    valid = {i for i, _ in _docs(tasks, "validation")}
    assert train and valid and not train & valid
    assert all(hash_to_validation(i, seed=0, permille=50) for i in valid)
    assert not any(hash_to_validation(i, seed=0, permille=50) for i in train)


def test_training_bytes_are_exact_and_only_the_last_doc_is_cut(fineweb):
    tasks, stats = _plan(fineweb, max_bytes=777_777, valid_bytes=100_000)
    assert sum(sum(t.n_bytes) for t in tasks if t.split == "train") == 777_777 == stats.splits["train"].bytes
    assert stats.splits["train"].truncated_docs == 1
    for task in tasks:
        assert task.n_bytes == [len(t.encode("utf-8")) for t in task.texts]


def test_shards_cover_the_target_size(fineweb):
    tasks, _ = _plan(fineweb, max_bytes=400_000, valid_bytes=50_000, shard_bytes=100_000)
    train = [t for t in tasks if t.split == "train"]
    assert [t.index for t in train] == list(range(len(train))) and len(train) >= 4
    assert all(sum(t.n_bytes) >= 100_000 for t in train[:-1])


def test_source_split_takes_validation_from_the_sources_own_split(pg19_dir, pg19_texts):
    tasks, _ = _plan(open_source(f"local:{pg19_dir}"), rule="source", max_bytes=500_000, valid_bytes=100_000)
    valid = "".join(t for _, t in _docs(tasks, "validation"))
    assert pg19_texts["validation"][0].startswith(valid) and len(valid.encode()) == 100_000
    assert all(i.startswith("http://www.gutenberg.org/") for i, _ in _docs(tasks, "train"))


def test_prepared_sizes_share_validation_shards(pg19_dir, tmp_path):
    store = Store.open(str(tmp_path))
    small = prepare(PrepareConfig(source=f"local:{pg19_dir}", max_bytes=300_000, valid_bytes=100_000),
                    store, actors=0, progress=False)
    large = prepare(PrepareConfig(source=f"local:{pg19_dir}", max_bytes=900_000, valid_bytes=100_000),
                    store, actors=0, progress=False)
    assert small.dataset_id != large.dataset_id
    assert shard_hashes(small.data, "validation") == shard_hashes(large.data, "validation")
    v_small, v_large = small.data["splits"]["validation"], large.data["splits"]["validation"]
    assert v_small["validation_id"] == v_large["validation_id"] and v_small["text_sha256"] == v_large["text_sha256"]
    docs = [d.doc_id for d in open_dataset(store, small.dataset_id).validation_docs()]
    assert docs == [d.doc_id for d in open_dataset(store, large.dataset_id).validation_docs()]


def test_empty_or_whitespace_corpus_is_refused_and_nothing_is_written(tmp_path):
    path = write_jsonl(tmp_path / "data" / "c.jsonl", [{"text": "   "}, {"text": "\n\t"}, {"text": ""}])
    store = Store.open(str(tmp_path / "store"))
    with pytest.raises(DataError, match=r"no text: 3 documents, all empty or whitespace"):
        prepare(PrepareConfig(source=f"local:{path}"), store, actors=0, progress=False)
    assert store.listdir("datasets") == []


def test_corpus_without_validation_docs_is_refused_and_cleaned_up(tmp_path):
    path = write_jsonl(tmp_path / "data" / "c.jsonl", [{"text": "only one document", "id": "x"}])
    assert not hash_to_validation("x", seed=0, permille=50)
    store = Store.open(str(tmp_path / "store"))
    with pytest.raises(DataError, match=r"no validation documents.*--split-rule offset"):
        prepare(PrepareConfig(source=f"local:{path}", split_rule="hash"), store, actors=0, progress=False)
    assert store.listdir("datasets") == []


def test_validation_spans_every_document_of_a_small_split_in_equal_shares(pg19_dir, pg19_texts):
    """pg19's sample has 3 validation books: 100 KB is a ~33 KB middle slice of each, never one book's prefix."""
    tasks, stats = _plan(open_source(f"local:{pg19_dir}"), rule="source", max_bytes=200_000, valid_bytes=100_000,
                         valid_docs=32)
    valid = _docs(tasks, "validation")
    assert len(valid) == 3 == stats.validation_draw["docs"]
    assert sum(len(t.encode()) for _, t in valid) == 100_000
    for (_, text), book in zip(valid, pg19_texts["validation"], strict=True):
        assert text in book and not book.startswith(text[:2000])  # a slice from inside the book
        assert 30_000 <= len(text.encode()) <= stats.validation_draw["share_bytes"]
    assert stats.validation_draw["draw"].startswith("spread")


def test_hash_rule_validation_spans_many_documents_each_capped_at_its_share(fineweb):
    tasks, stats = _plan(fineweb, max_bytes=300_000, valid_bytes=150_000, valid_docs=32)
    valid = _docs(tasks, "validation")
    share = stats.validation_draw["share_bytes"]
    assert share == -(-150_000 // 32) and len(valid) >= 32
    assert all(len(t.encode()) <= share for _, t in valid)
    same, _ = _plan(fineweb, max_bytes=900_000, valid_bytes=150_000, valid_docs=32)
    assert _docs(same, "validation") == valid  # the same bytes for every training size


def test_the_manifest_records_the_draw_and_the_rule_changes_the_ids(pg19_dir, tmp_path):
    store = Store.open(str(tmp_path))
    spread = prepare(PrepareConfig(source=f"local:{pg19_dir}", max_bytes=100_000, valid_bytes=30_000),
                     store, actors=0, progress=False)
    old = prepare(PrepareConfig(source=f"local:{pg19_dir}", max_bytes=100_000, valid_bytes=30_000, valid_docs=0),
                  store, actors=0, progress=False)
    draw = spread.data["splits"]["validation"]["draw"]
    assert draw["docs"] == 3 and draw["target_docs"] == 32 and draw["share_bytes"] == 10_000
    assert old.data["splits"]["validation"]["draw"]["docs"] == 1  # the old rule: one book's prefix
    assert spread.dataset_id != old.dataset_id
    assert spread.data["splits"]["validation"]["validation_id"] != old.data["splits"]["validation"]["validation_id"]

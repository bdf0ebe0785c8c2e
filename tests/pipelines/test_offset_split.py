"""The offset split: a one-document corpus (text8's shape) cut by byte position, validation from its end."""

from __future__ import annotations

import logging
import random
import tracemalloc

import numpy as np
import pytest

from nightshift.pipelines import local_files, offset_split
from nightshift.pipelines.errors import DataError
from nightshift.pipelines.prepare import PrepareConfig, prepare
from nightshift.pipelines.reader import open_dataset
from nightshift.pipelines.sources import open_source
from nightshift.pipelines.split import PlanStats, plan_shards, resolve_rule
from nightshift.pipelines.store import Store
from tests.pipelines.helpers import write_jsonl

WORDS = ["the", "anarchism", "originated", "as", "δέλτα", "€uro", "naïve", "z"]  # multi-byte characters too


@pytest.fixture(scope="module")
def one_doc(tmp_path_factory):
    """2.2 MB of words and spaces with no line break: one document, as text8 and enwik8 are."""
    rng = random.Random(8)
    text = " ".join(rng.choice(WORDS) for _ in range(300_000))
    path = tmp_path_factory.mktemp("text8") / "text8.txt"
    path.write_text(text, encoding="utf-8")
    return path, text.encode("utf-8")


def _plan(source, **kw):
    stats = PlanStats()
    args = dict(rule="offset", max_bytes=10**9, valid_bytes=200_000, shard_bytes=1, valid_permille=50,
                split_seed=0, valid_docs=32)
    tasks = list(plan_shards(source, stats=stats, **(args | kw)))
    return tasks, stats


def _text(tasks, split):
    return "".join(t for task in tasks if task.split == split for t in task.texts).encode("utf-8")


def test_one_document_prepares_into_train_and_the_validation_bytes_from_its_end(one_doc, tmp_path, caplog):
    path, data = one_doc
    store = Store.open(str(tmp_path / "store"))
    with caplog.at_level(logging.WARNING, logger="nightshift.pipelines.split"):
        made = prepare(PrepareConfig(source=f"local:{path}", max_bytes=10**9, valid_bytes=150_000,
                                     tokenizer="bytes"), store, actors=0, progress=False)
    assert [r.getMessage() for r in caplog.records if "one document" in r.getMessage()] == [
        f"local:{path} is one document: splitting it by byte offset, validation from its end (split rule 'offset')"]
    manifest = made.data
    assert manifest["split_rule"] == "offset"
    draw = manifest["splits"]["validation"]["draw"]
    assert draw["rule"] == "offset" and draw["draw"] == offset_split.DRAW and draw["total_bytes"] == len(data)
    train, valid = (manifest["splits"][s]["totals"] for s in ("train", "validation"))
    assert train["bytes"] + valid["bytes"] == len(data) and train["tokens"] + valid["tokens"] == len(data)
    assert len(data) - 150_000 <= draw["valid_start"] <= len(data) - 150_000 + 3  # a character boundary
    ds = open_dataset(store, made.dataset_id)
    tokens = np.concatenate([np.asarray(d.tokens) for d in ds.validation_docs()])
    assert tokens.astype(np.uint8).tobytes() == data[draw["valid_start"]:]  # the end of the text, in order
    assert train["docs"] == -(-train["bytes"] // offset_split.PIECE_BYTES) == 2 and valid["docs"] == 1  # 1 MiB rows
    assert manifest["stats"]["source_exhausted"]


def test_validation_is_the_same_for_every_training_size(one_doc):
    source = open_source(f"local:{one_doc[0]}")
    small, stats = _plan(source, max_bytes=300_001)
    large, _ = _plan(source, max_bytes=10**9)
    assert _text(small, "validation") == _text(large, "validation") == one_doc[1][-len(_text(small, "validation")):]
    assert len(_text(small, "train")) <= 300_001 and one_doc[1].startswith(_text(small, "train"))
    assert not stats.source_exhausted and stats.validation_draw["train_end"] == len(_text(small, "train"))
    ids = [i for task in small for i in task.doc_ids]
    assert len(set(ids)) == len(ids) and all("@" in i for i in ids)


def test_a_long_document_streams_through_in_pieces(one_doc, monkeypatch):
    """With 64 KB blocks and pieces, the 2.2 MB document is never held whole: memory follows the block."""
    monkeypatch.setattr(local_files, "_BLOCK", 1 << 16)
    monkeypatch.setattr(offset_split, "PIECE_BYTES", 1 << 16)
    source = open_source(f"local:{one_doc[0]}")
    stats, passed = PlanStats(), 0
    tracemalloc.start()
    try:
        for task in plan_shards(source, rule="offset", max_bytes=10**9, valid_bytes=200_000, shard_bytes=1,
                                valid_permille=50, split_seed=0, stats=stats):
            passed += sum(task.n_bytes)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert passed == len(one_doc[1]) and peak < len(one_doc[1]) // 2
    assert max(len(t.encode()) for task in _plan(source)[0] for t in task.texts) <= 1 << 16


def test_offset_on_a_few_documents_takes_validation_from_the_last_ones(tmp_path):
    rows = [{"text": f"book {i} " + "x" * 5000, "id": f"b{i}"} for i in range(4)]
    source = open_source(f"local:{write_jsonl(tmp_path / 'books.jsonl', rows)}")
    assert resolve_rule("auto", source) == "hash"  # several documents: not chosen by itself
    tasks, _ = _plan(source, valid_bytes=7000)
    valid = [i for task in tasks if task.split == "validation" for i in task.doc_ids]
    assert valid == ["b2@3014", "b3@0"]  # 7000 of the 4 x 5007 bytes from the end: the tail of b2, all of b3
    whole = "".join(r["text"] for r in rows).encode()
    assert _text(tasks, "train") + _text(tasks, "validation") == whole


def test_a_source_no_larger_than_the_validation_bytes_is_one_line(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("a short text with no blank line", encoding="utf-8")
    store = Store.open(str(tmp_path / "store"))
    with pytest.raises(DataError, match=r"holds 31 bytes of text, no more than --valid-bytes \(1,000,000\).*"
                                        r"use a smaller --valid-bytes"):
        prepare(PrepareConfig(source=f"local:{path}", tokenizer="bytes"), store, actors=0, progress=False)
    assert store.listdir("datasets") == []

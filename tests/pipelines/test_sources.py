"""Sources: local and repo-shaped parquet, jsonl and txt; split naming; ids; bad input; bounded reads."""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nightshift.pipelines import hub
from nightshift.pipelines.errors import DataError
from nightshift.pipelines.parquet_io import parquet_rows
from nightshift.pipelines.sources import HubSpec, Source, open_source, text_hash_id
from tests.pipelines.helpers import write_jsonl


def test_pg19_folder_honours_its_own_split_files(pg19_dir, pg19_texts):
    source = open_source(f"local:{pg19_dir}")
    assert source.has_splits
    valid = list(source.documents("validation"))
    assert [d.text for d in valid] == pg19_texts["validation"]
    assert all(d.split == "validation" and d.doc_id.startswith("http://www.gutenberg.org/") for d in valid)
    train_ids = {d.doc_id for d in source.documents("train")}
    assert len(train_ids) == len(pg19_texts["train"]) and not train_ids & {d.doc_id for d in valid}


def test_fineweb_parquet_uses_id_column_or_a_text_hash_when_ids_are_null(shared_data):
    rows = pq.read_table(shared_data / "fineweb" / "fineweb_sample10BT_rows.parquet", columns=["id"])
    first_ids = rows.column("id").to_pylist()[:5]
    docs = open_source(f"local:{shared_data / 'fineweb' / 'fineweb_sample10BT_rows.parquet'}").documents()
    assert [next(docs).doc_id for _ in range(5)] == first_ids
    head = open_source(f"local:{shared_data / 'fineweb' / 'fineweb_CC-MAIN-2013-20_head300.parquet'}")
    assert not head.has_splits
    doc = next(head.documents())
    assert doc.doc_id == text_hash_id(doc.text)  # the id column is null in this file


def test_jsonl_with_explicit_text_and_id_fields(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"body": "first doc", "key": 7}, {"body": "second", "key": 8}])
    docs = list(open_source(f"local:{path}", text_field="body", id_field="key").documents())
    assert [(d.doc_id, d.text) for d in docs] == [("7", "first doc"), ("8", "second")]


def test_txt_uses_endoftext_markers_when_present(shared_data):
    path = shared_data / "tinystories" / "TinyStoriesV2_sample_cs336.txt"
    docs = list(open_source(f"local:{path}").documents())
    assert len(docs) == path.read_text().count("<|endoftext|>") + (0 if path.read_text().rstrip().endswith(
        "<|endoftext|>") else 1)
    assert all("<|endoftext|>" not in d.text for d in docs)


def test_txt_without_markers_splits_on_blank_lines(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("one\nstill one\n\n\ntwo\n  \nthree\n", encoding="utf-8")
    assert [d.text for d in open_source(f"local:{path}").documents()] == ["one\nstill one", "two", "three"]


def test_invalid_utf8_is_replaced_and_counted_not_a_crash(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 ok\n\nfine \xff\xfe text\n")
    (tmp_path / "bad.jsonl").write_bytes(b'{"text": "x\xc3y"}\n')
    docs = list(open_source(f"local:{tmp_path}").documents())
    assert [d.text for d in docs] == ["x\ufffdy", "caf\ufffd ok", "fine \ufffd\ufffd text"]
    assert [d.replaced for d in docs] == [1, 1, 2]


def test_folder_with_train_and_validation_files_is_split_by_name(tmp_path):
    write_jsonl(tmp_path / "train-00000.jsonl", [{"text": "t1"}, {"text": "t2"}])
    write_jsonl(tmp_path / "valid.jsonl", [{"text": "v1"}])
    source = open_source(f"local:{tmp_path}")
    assert source.has_splits
    assert [d.text for d in source.documents("validation")] == ["v1"]
    assert [d.text for d in source.documents("train")] == ["t1", "t2"]


def test_missing_text_field_lists_the_columns(pg19_dir):
    with pytest.raises(DataError, match=r"--text-field 'body'.*columns: short_book_title, publication_date, url, text"):
        open_source(f"local:{pg19_dir}", text_field="body").check()


def test_missing_text_field_in_jsonl_lists_the_columns(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"content": "x", "id": 1}])
    with pytest.raises(DataError, match=r"'text' is not a column.*columns: content, id"):
        open_source(f"local:{path}").check()


def test_unknown_source_and_missing_path_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match=r"unknown source 'wikipedia'; accepted: pg19, fineweb, fineweb-edu, "
                                        r"tinystories, hf:OWNER/REPO\[:CONFIG\]\[@REVISION\], local:PATH, "
                                        r"an fsspec URL"):
        open_source("wikipedia")
    with pytest.raises(DataError, match=r"does not exist"):
        open_source(f"local:{tmp_path / 'nope'}")
    (tmp_path / "notes.md").write_text("hi")
    with pytest.raises(DataError, match=r"no data files"):
        open_source(f"local:{tmp_path}")


def test_parquet_rows_with_null_ids_and_extra_columns(tmp_path):
    table = pa.table({"text": ["alpha", "beta"], "id": ["a", None], "url": ["u1", "u2"]})
    pq.write_table(table, tmp_path / "part.parquet")
    docs = list(open_source(f"local:{tmp_path}").documents())
    assert [(d.doc_id, d.text) for d in docs] == [("a", "alpha"), (text_hash_id("beta"), "beta")]


def test_hub_source_offline_is_one_clear_line():
    """HF_DATASETS_OFFLINE=1 (tests/conftest.py): the hub path is reached and fails with one line."""
    source = open_source("fineweb")
    assert source.config == "sample-10BT" and not source.has_splits
    with pytest.raises(DataError) as err:
        source.check()
    assert "HuggingFaceFW/fineweb" in str(err.value) and "sample-10BT" in str(err.value)
    assert "local:PATH" in str(err.value) and "\n" not in str(err.value)
    assert open_source("pg19").has_splits and open_source("tinystories").has_splits


def test_hub_code_path_offline_on_a_repo_shaped_folder(pg19_dir, pg19_texts):
    """`datasets` resolves a local folder exactly as it resolves a hub repo (builder, splits, data files)."""
    assert hub.parquet_files(str(pg19_dir), None, None, "validation") == [str(pg19_dir / "validation.parquet")]
    source = Source(spec="pg19", hub=HubSpec(str(pg19_dir), None, ("train", "validation")))
    source.check()
    docs = list(source.documents("validation"))
    assert [d.text for d in docs] == pg19_texts["validation"]
    assert [d.doc_id for d in docs] == [d.doc_id for d in open_source(f"local:{pg19_dir}").documents("validation")]
    with pytest.raises(DataError, match=r"has no 'dev' split; splits: train, validation, test"):
        hub.parquet_files(str(pg19_dir), None, None, "dev")


def test_parquet_is_read_one_row_group_at_a_time(tmp_path):
    """Memory is bounded by a row group, not the file (datasets' own parquet scan reads the file ahead)."""
    text = "x" * 100_000
    pq.write_table(pa.table({"text": [text] * 200, "id": [str(i) for i in range(200)]}), tmp_path / "big.parquet",
                   row_group_size=2, compression="none")
    rows = parquet_rows(str(tmp_path / "big.parquet"), ["text", "id"])
    assert next(rows)["id"] == "0"
    time.sleep(0.5)  # a background readahead would fill up now
    assert pa.total_allocated_bytes() < 5_000_000  # the file holds 20 MB of text
    assert [r["id"] for r in rows] == [str(i) for i in range(1, 200)]

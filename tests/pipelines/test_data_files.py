"""Data files: compressed jsonl/txt, fsspec URLs (a real S3 API on moto, a real HTTP server), text in pieces."""

from __future__ import annotations

import bz2
import functools
import gzip
import http.server
import re
import threading

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nightshift.pipelines.data_files import list_files
from nightshift.pipelines.errors import DataError
from nightshift.pipelines.local_files import EOT_MARKER, txt_pieces
from nightshift.pipelines.prepare import PrepareConfig, prepare
from nightshift.pipelines.sources import open_source
from nightshift.pipelines.store import Store
from tests.pipelines.helpers import shard_hashes

COMPRESS = {"gz": gzip.compress, "bz2": bz2.compress, "zst": zstandard.ZstdCompressor().compress}
JSONL = b'{"text": "first row", "id": "a"}\n\n{"text": "caf\xc3\xa9 \xff", "id": "b"}\n'
TXT = b"one story\nstill one\n\n\nanother \xe2\x82\xac story\n"


@pytest.mark.parametrize("suffix", ["jsonl.gz", "jsonl.zst", "jsonl.bz2", "txt.gz", "txt.zst", "txt.bz2"])
def test_compressed_files_read_as_their_plain_text(suffix, tmp_path):
    fmt, comp = suffix.split(".")
    plain = JSONL if fmt == "jsonl" else TXT
    (tmp_path / f"plain.{fmt}").write_bytes(plain)
    (tmp_path / f"packed.{suffix}").write_bytes(COMPRESS[comp](plain))
    expected = [(d.doc_id, d.text, d.replaced) for d in open_source(f"local:{tmp_path / f'plain.{fmt}'}").documents()]
    source = open_source(f"local:{tmp_path / f'packed.{suffix}'}")
    assert [(d.doc_id, d.text, d.replaced) for d in source.documents()] == expected
    assert len(expected) == 2 and source.columns(None)[0] in ("text", "id")


def test_multi_member_gzip_and_multi_frame_zstd_read_whole(tmp_path):
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(b"one\n\n") + gzip.compress(b"two\n"))
    zstd = zstandard.ZstdCompressor()
    (tmp_path / "b.jsonl.zst").write_bytes(zstd.compress(b'{"text": "three"}\n') + zstd.compress(b'{"text": "four"}\n'))
    assert [d.text for d in open_source(f"local:{tmp_path}").documents()] == ["one", "two", "three", "four"]


def test_a_corrupt_or_unsupported_compressed_file_is_one_line(tmp_path):
    (tmp_path / "bad.jsonl.gz").write_bytes(gzip.compress(JSONL)[:-12])  # cut short
    with pytest.raises(DataError, match=r"bad\.jsonl\.gz is not a readable gzip file \(EOFError: "):
        list(open_source(f"local:{tmp_path / 'bad.jsonl.gz'}").documents())
    (tmp_path / "bad.jsonl.gz").unlink()
    (tmp_path / "data.parquet.gz").write_bytes(b"x")  # parquet needs random access: not a data file compressed
    with pytest.raises(DataError, match=r"no data files in .*; accepted: parquet, jsonl/json/ndjson or txt files "
                                        r"\(jsonl and txt also as \.gz, \.bz2 or \.zst\)"):
        open_source(f"local:{tmp_path}")


def test_compressed_files_named_by_split_are_the_sources_split(tmp_path):
    (tmp_path / "train.jsonl.zst").write_bytes(COMPRESS["zst"](JSONL))
    (tmp_path / "valid.txt.gz").write_bytes(COMPRESS["gz"](TXT))
    source = open_source(f"local:{tmp_path}")
    assert source.has_splits and [f.split for f in source.files] == ["train", "validation"]
    assert [d.text for d in source.documents("validation")] == ["one story\nstill one", "another € story"]


def _whole_file_split(data: bytes) -> list[bytes]:
    """What splitting the whole file at once gives (the streaming reader must give the same)."""
    parts = data.split(EOT_MARKER) if EOT_MARKER in data else re.split(rb"\n(?:[ \t\r\f\v]*\n)+", data)
    return [p.strip(b"\n\r") for p in parts if p.strip()]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.sampled_from([b"a", b"bc", b" ", b"\t", b"\x0b", b"\n", b"\r", b"\n\n", EOT_MARKER,
                                        b"<|end", b"|>", b"\xc3\xa9"]), max_size=40),
       block=st.integers(min_value=1, max_value=16))
def test_text_pieces_are_the_whole_file_split_in_any_block_size(chunks, block, tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"".join(chunks))
    docs, current = [], []
    for piece, first, last in txt_pieces(list_files(str(path))[0], block_size=block):
        assert first == (not current)
        current.append(piece)
        if last:
            docs.append(b"".join(current))
            current = []
    assert docs == _whole_file_split(b"".join(chunks))


def _upload(endpoint: str, bucket: str, folder) -> None:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"corpus/{path.relative_to(folder).as_posix()}")


@pytest.fixture()
def mixed_folder(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "more").mkdir(parents=True)
    pq.write_table(pa.table({"text": ["a parquet row", "another"], "id": ["p1", "p2"]}), folder / "a.parquet")
    (folder / "b.jsonl.zst").write_bytes(COMPRESS["zst"](JSONL))
    (folder / "more" / "c.txt.bz2").write_bytes(COMPRESS["bz2"](TXT * 200))
    return folder


@pytest.mark.s3
def test_an_s3_folder_reads_and_prepares_like_the_same_local_folder(mixed_folder, s3_env, tmp_path):
    bucket = s3_env.make_bucket("corpora")
    _upload(s3_env.endpoint, bucket[5:], mixed_folder)
    local, remote = open_source(f"local:{mixed_folder}"), open_source(f"{bucket}/corpus/")
    assert [f.rel for f in remote.files] == ["a.parquet", "b.jsonl.zst", "more/c.txt.bz2"]
    assert [(d.doc_id, d.text) for d in remote.documents()] == [(d.doc_id, d.text) for d in local.documents()]
    assert all(f["checksum"] for f in remote.fingerprint()["files"])  # the S3 ETag, not a download
    store = Store.open(str(tmp_path / "store"))
    made = {s: prepare(PrepareConfig(source=s, max_bytes=2_000, valid_bytes=400, valid_permille=300,
                                     tokenizer="bytes"), store, actors=0, progress=False)
            for s in (f"local:{mixed_folder}", f"{bucket}/corpus")}
    a, b = made.values()
    assert b.dataset_id.startswith("s3-corpus-") and a.dataset_id != b.dataset_id
    assert shard_hashes(a.data, "train") == shard_hashes(b.data, "train")
    assert shard_hashes(a.data, "validation") == shard_hashes(b.data, "validation")
    one = open_source(f"{bucket}/corpus/b.jsonl.zst")
    assert [d.doc_id for d in one.documents()] == ["a", "b"]
    with pytest.raises(DataError, match=r"source 's3://corpora/nope.txt' does not exist; expected parquet"):
        open_source(f"{bucket}/nope.txt")


def test_an_http_url_names_a_file_or_a_folder(mixed_folder):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mixed_folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        one = open_source(f"{url}/b.jsonl.zst")
        assert [d.text for d in one.documents()] == ["first row", "caf\u00e9 \ufffd"]
        folder = open_source(f"{url}/")
        assert sorted(f.rel.rsplit("/", 1)[-1] for f in folder.files) == ["a.parquet", "b.jsonl.zst", "c.txt.bz2"]
    finally:
        server.shutdown()
        server.server_close()

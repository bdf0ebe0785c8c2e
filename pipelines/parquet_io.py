"""Parquet rows in bounded memory, from a local path or any fsspec URL (hf://, s3://...).

Why not `datasets`' own parquet streaming: it scans through an Arrow dataset
fragment that reads the *whole file* ahead in the background (measured with
pyarrow 25: 120 MB of Arrow buffers for a 126 MB file, whatever the readahead
settings), so memory grows with the file. `ParquetFile.iter_batches` reads
one row group at a time; `datasets` still resolves which files a hub dataset
has (see hub.py), so local and hub parquet share this reader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO

from nightshift.pipelines.errors import DataError

BATCH_BYTES = 1 << 20  # decoded text per record batch: a pg19 book or ~150 web pages

# a URL or path, or an opener (a data file's `open`: local, s3://, https:// alike through fsspec)
ParquetSource = str | Callable[[], AbstractContextManager[BinaryIO]]


def _open(src: ParquetSource) -> AbstractContextManager[BinaryIO]:
    import fsspec

    if callable(src):
        return src()
    return fsspec.open(src, "rb").open() if "://" in src else open(src, "rb")


def parquet_columns(src: ParquetSource, name: str | None = None) -> list[str]:
    import pyarrow.parquet as pq

    try:
        with _open(src) as fh:
            return list(pq.ParquetFile(fh).schema_arrow.names)
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError (and so is DataError: a named file)
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{name or src!r} is not a readable parquet file ({type(exc).__name__}: {exc})") from None


def parquet_rows(src: ParquetSource, columns: list[str]) -> Iterator[dict]:
    """Rows of `columns` (those present), one row group in memory at a time."""
    import pyarrow.parquet as pq

    with _open(src) as fh:
        pf = pq.ParquetFile(fh, pre_buffer=False)
        present = [c for c in columns if c in pf.schema_arrow.names]
        meta = pf.metadata
        if meta.num_rows == 0:
            return
        first = meta.row_group(0)
        row_bytes = max(1, first.total_byte_size // max(1, first.num_rows))
        batch_size = max(1, min(4096, BATCH_BYTES // row_bytes))
        for batch in pf.iter_batches(batch_size=batch_size, columns=present, use_threads=False):
            yield from batch.to_pylist()

"""Parquet rows in bounded memory, from a local path or any fsspec URL (hf://, s3://...).

Why not `datasets`' own parquet streaming: it scans through an Arrow dataset
fragment that reads the *whole file* ahead in the background (measured with
pyarrow 25: 120 MB of Arrow buffers for a 126 MB file, whatever the readahead
settings), so memory grows with the file. `ParquetFile.iter_batches` reads
one row group at a time; `datasets` still resolves which files a hub dataset
has (see hub.py), so local and hub parquet share this reader.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from nightshift.pipelines.errors import DataError

BATCH_BYTES = 1 << 20  # decoded text per record batch: a pg19 book or ~150 web pages


def _open(url: str) -> BinaryIO:
    import fsspec

    return fsspec.open(url, "rb").open() if "://" in url else open(url, "rb")


def parquet_columns(url: str) -> list[str]:
    import pyarrow.parquet as pq

    try:
        with _open(url) as fh:
            return list(pq.ParquetFile(fh).schema_arrow.names)
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        raise DataError(f"{url!r} is not a readable parquet file ({type(exc).__name__}: {exc})") from None


def parquet_rows(url: str, columns: list[str]) -> Iterator[dict]:
    """Rows of `columns` (those present), one row group in memory at a time."""
    import pyarrow.parquet as pq

    with _open(url) as fh:
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

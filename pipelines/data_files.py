"""The data files behind a local path or an fsspec URL: which files, their format and compression, how to open them.

One code path for a laptop folder and a bucket: both are listed and opened
through fsspec (S3 endpoint from AWS_ENDPOINT_URL, as the store does), so the
offline tests on local files run the reader that reads s3:// and https://.
Compressed text (.gz, .bz2, .zst) is decompressed while it streams, never to
disk; our own decompressors rather than fsspec's so that multi-member gzip,
multi-stream bzip2 and multi-frame zstd read whole and every format iterates
by line.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import fsspec

from nightshift.pipelines.errors import DataError
from nightshift.pipelines.store import storage_options

log = logging.getLogger(__name__)

FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".txt": "txt"}
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
COMPRESSIBLE = ("jsonl", "txt")  # parquet compresses inside the file and needs random access
SPLIT_WORDS = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
               "dev": "validation", "test": "test"}
ACCEPTED_FILES = "parquet, jsonl/json/ndjson or txt files (jsonl and txt also as .gz, .bz2 or .zst)"
CHECKSUM_KEYS = ("ETag", "etag", "md5Hash", "crc32c")  # what object stores report of an object's content
_HASH_BLOCK = 1 << 22


def _zstd(raw: BinaryIO) -> BinaryIO:
    import zstandard

    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True))


def _gzip(raw: BinaryIO) -> BinaryIO:
    return gzip.GzipFile(fileobj=raw, mode="rb")


def _bz2(raw: BinaryIO) -> BinaryIO:
    return bz2.BZ2File(raw, mode="rb")


DECOMPRESSORS: dict[str, Callable[[BinaryIO], BinaryIO]] = {"gzip": _gzip, "bz2": _bz2, "zstd": _zstd}


def _read_errors() -> tuple[type[BaseException], ...]:
    import zstandard

    return (OSError, EOFError, zstandard.ZstdError)


@dataclass(frozen=True, slots=True)
class DataFile:
    """One file of a source; `open()` gives its decompressed bytes, read in order."""

    path: str  # the filesystem's own path (an absolute path for local files)
    rel: str  # relative to the source's root: what fingerprints and split names use
    format: str  # parquet | jsonl | txt
    compression: str | None
    split: str | None
    size: int
    checksum: str | None = None  # the store's content tag (S3 ETag...), None for local files
    fs: Any = field(default=None, repr=False, compare=False)

    @property
    def local(self) -> bool:
        protocol = self.fs.protocol
        return "file" in (protocol if isinstance(protocol, (tuple, list)) else (protocol,))

    @property
    def name(self) -> str:
        """How errors name the file: its path on disk, else its URL."""
        return self.path if self.local else self.fs.unstrip_protocol(self.path)

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        try:
            with self.fs.open(self.path, "rb") as raw:
                if self.compression is None:
                    yield raw
                else:
                    with DECOMPRESSORS[self.compression](raw) as fh:
                        yield fh
        except _read_errors() as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            what = f"a readable {self.compression} file" if self.compression else "readable"
            raise DataError(f"{self.name} is not {what} ({type(exc).__name__}: {first})") from None

    def fingerprint(self) -> dict[str, Any]:
        """Name, size and content: sha256 of a local file, the store's checksum of a remote one (else sha256)."""
        entry: dict[str, Any] = {"path": self.rel, "bytes": self.size}
        if self.checksum and not self.local:
            return entry | {"checksum": self.checksum}
        h = hashlib.sha256()
        with self.fs.open(self.path, "rb") as fh:
            while block := fh.read(_HASH_BLOCK):
                h.update(block)
        return entry | {"sha256": h.hexdigest()}


def file_kind(name: str) -> tuple[str, str | None] | None:
    """`a.jsonl.zst` -> ("jsonl", "zstd"); None for a file that is not data."""
    lower = name.lower()
    compression = next((c for ext, c in COMPRESSIONS.items() if lower.endswith(ext)), None)
    if compression:
        lower = lower.rsplit(".", 1)[0]
    fmt = FORMATS.get("." + lower.rsplit(".", 1)[-1]) if "." in lower else None
    if fmt is None or (compression and fmt not in COMPRESSIBLE):
        return None
    return fmt, compression


def split_of(rel: str) -> str | None:
    """`train.parquet`, `validation-00000-of-00001.parquet`, `TinyStories_valid_head.txt.gz` -> its split."""
    name = rel.rsplit("/", 1)[-1].lower()
    if any(name.endswith(ext) for ext in COMPRESSIONS):
        name = name.rsplit(".", 1)[0]
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    for word in re.split(r"[-_.\s]+", stem):
        if word in SPLIT_WORDS:
            return SPLIT_WORDS[word]
    return None


def open_location(location: str) -> tuple[Any, str]:
    """(filesystem, path) of a local path or URL, or one line naming what is wrong with it."""
    try:
        fs, root = fsspec.core.url_to_fs(location, **storage_options(location))
    except (ValueError, ImportError) as exc:
        raise DataError(f"source URL {location!r} is not usable ({str(exc).splitlines()[0]}); "
                        "accepted: a local path, file://, s3://, gs://, https://... (fsspec)") from None
    return fs, (root.rstrip("/") or root)


def list_files(location: str) -> list[DataFile]:
    """The data files of a file or folder (searched recursively), in path order."""
    fs, root = open_location(location)
    try:
        info = fs.info(root)
        as_file = info.get("type") != "directory" and file_kind(root.rsplit("/", 1)[-1]) is not None
        infos = {root: info} if as_file else fs.find(root, detail=True)
    except FileNotFoundError:
        raise DataError(f"source {location!r} does not exist; expected {ACCEPTED_FILES} or a folder of them") from None
    except Exception as exc:  # noqa: BLE001 - botocore, aiohttp, gcsfs: each store raises its own; one line
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"cannot list source {location!r}: {type(exc).__name__}: {first}") from None
    base = root.rsplit("/", 1)[0] if as_file else root
    found = []
    for path, meta in infos.items():
        rel = path[len(base):].lstrip("/") if path.startswith(base) else path.rsplit("/", 1)[-1]
        kind = file_kind(rel.rsplit("/", 1)[-1])
        if kind is None or meta.get("type") == "directory":
            continue
        checksum = next((str(meta[k]).strip('"') for k in CHECKSUM_KEYS if meta.get(k)), None)
        found.append(DataFile(path=path, rel=rel, format=kind[0], compression=kind[1], split=None,
                              size=int(meta.get("size") or 0), checksum=checksum, fs=fs))
    if not found:
        raise DataError(f"no data files in {location!r}; accepted: {ACCEPTED_FILES}")
    found.sort(key=lambda f: f.rel.split("/"))
    return _with_splits(found, location, folder=not as_file)


def _with_splits(files: list[DataFile], location: str, *, folder: bool) -> list[DataFile]:
    """Split by file name only when every file names one and train and validation both appear."""
    splits = {f.rel: split_of(f.rel) for f in files}
    split_mode = all(splits.values()) and {"train", "validation"} <= set(splits.values())
    if not split_mode and any(splits.values()) and folder:
        log.warning("%s: not every file is named by split (train/validation/test); splitting by doc-id hash",
                    location)
    if not split_mode:
        return files
    return [DataFile(path=f.path, rel=f.rel, format=f.format, compression=f.compression, split=splits[f.rel],
                     size=f.size, checksum=f.checksum, fs=f.fs) for f in files]

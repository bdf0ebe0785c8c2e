"""Where documents come from: HF hub datasets, or parquet/jsonl/txt files on disk or behind any fsspec URL.

Every source yields `Document(doc_id, text, split)`. Hub parquet repos are
resolved to their files by `datasets` (hub.py) and then read by the same
row-group reader as data files (parquet_io.py), and data files are listed and
opened through fsspec whether local or remote (data_files.py), so the offline
tests on local files exercise the code path the hub and buckets use.

A source has its *own* split (pg19, TinyStories, a folder of train/validation
files) or none (FineWeb): then prepare splits by a hash of the doc id, or by
byte offset when it is one document (split.py). `parts()` gives the same text
as `documents()` in pieces, so that one long text document never has to fit
in memory.
"""

from __future__ import annotations

import codecs
import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightshift.pipelines import hub, hub_exports
from nightshift.pipelines.data_files import DataFile, list_files
from nightshift.pipelines.errors import DataError
from nightshift.pipelines.local_files import (
    clean_text,
    jsonl_columns,
    jsonl_rows,
    txt_documents,
    txt_pieces,
    txt_separator,
)
from nightshift.pipelines.parquet_io import parquet_columns, parquet_rows
from nightshift.pipelines.source_spec import ACCEPTED, HUB_SOURCES, HubSpec, parse_source

__all__ = ["ACCEPTED", "HUB_SOURCES", "Document", "HubSpec", "Part", "Source", "open_source", "text_hash_id"]

AUTO_ID_FIELDS = ("id", "url")
TXT_COLUMNS = ["text"]


@dataclass(frozen=True, slots=True)
class Document:
    doc_id: str
    text: str
    split: str | None = None  # the source's own split name, None for unsplit sources
    replaced: int = 0  # invalid UTF-8 sequences turned into U+FFFD


@dataclass(frozen=True, slots=True)
class Part:
    """A piece of one document, in order: a text file's long documents come in pieces, every other one whole."""

    text: str
    doc_id: str | None  # None: the document has no id of its own (its text hash, known only at its end)
    last: bool  # the document's last piece
    replaced: int = 0


def text_hash_id(text: str) -> str:
    """A stable id for rows without one: the same text always lands in the same split."""
    return hash_id(hashlib.sha256(text.encode("utf-8")))


def hash_id(h: Any) -> str:
    """`text_hash_id` from a sha256 fed the text's UTF-8 bytes (a document read in pieces)."""
    return "sha256:" + h.hexdigest()[:24]


@dataclass(slots=True)
class Source:
    """A resolved `--source`: knows its files or hub repo, its columns and whether it has splits."""

    spec: str
    text_field: str = "text"
    id_field: str | None = None
    config: str | None = None
    revision: str | None = None
    hub: HubSpec | None = None
    root: str | None = None
    files: list[DataFile] = field(default_factory=list)
    list_hub_files: hub_exports.ListFiles = field(default=hub_exports.hub_listing, repr=False)
    _resolved: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def has_splits(self) -> bool:
        if self.hub is not None:
            if self.hub.splits_from_hub:
                names = self._cached("splits", lambda: hub.split_names(*self._hub_args()))
                return {"train", "validation"} <= set(names)
            return self.hub.splits is not None
        return any(f.split == "validation" for f in self.files) and any(f.split == "train" for f in self.files)

    def hub_location(self) -> hub_exports.HubLocation:
        """Where the hub data is read from: an alias of a script repo resolves to a whole parquet copy."""
        def resolve() -> hub_exports.HubLocation:
            if self.hub.mirror and self.revision is None:
                return hub_exports.whole_parquet(self.hub.repo, self.hub.mirror, self.config,
                                                 self.hub.splits or ("train",), self.list_hub_files)
            return hub_exports.HubLocation(self.hub.repo, self.revision)
        return self._cached("location", resolve)

    def fingerprint(self) -> dict[str, Any]:
        """What the data *is*: hub repo/config/revision, or each file's name, size and content hash."""
        if self.hub is not None:
            where = self.hub_location()
            return {"repo": where.repo, "config": self.config, "revision": where.revision}
        return {"files": [f.fingerprint() for f in self.files]}

    def check(self) -> None:
        """Open the data and check the text/id fields before anything is written."""
        for split in (("train", "validation") if self.has_splits else (None,)):
            self._check_columns(self.columns(split), split)

    def columns(self, split: str | None) -> list[str]:
        if self.hub is not None:
            urls = self._hub_files(split or "train")
            if urls is not None:
                return parquet_columns(urls[0])
            ds = hub.stream(*self._hub_args(), split or "train")
            cols = ds.column_names
            if cols is None:
                first = next(iter(ds), None)
                cols = list(first) if first else []
            return list(cols)
        found: list[str] = []
        for f in self._files(split):
            found += [c for c in _COLUMNS[f.format](f) if c not in found]
        return found

    def documents(self, split: str | None = None) -> Iterator[Document]:
        """Documents of one of the source's own splits (or of everything when split is None)."""
        if self.hub is not None:
            urls = self._hub_files(split or "train")
            if urls is not None:
                yield from self._parquet_docs(urls, split)
            else:
                yield from self._dataset_docs(hub.stream(*self._hub_args(), split or "train"), split)
            return
        for fmt, group in itertools.groupby(self._files(split), key=lambda f: f.format):
            yield from _READERS[fmt](self, list(group), split)

    def parts(self, split: str | None = None) -> Iterator[Part]:
        """The text of `documents(split)` in order, a long text-file document in pieces of about 1 MB."""
        if self.hub is not None:
            for doc in self.documents(split):
                yield Part(doc.text, doc.doc_id, True, doc.replaced)
            return
        for fmt, group in itertools.groupby(self._files(split), key=lambda f: f.format):
            if fmt == "txt":
                for f in group:
                    yield from _txt_parts(f, self.separator(f))
            else:
                for doc in _READERS[fmt](self, list(group), split):
                    yield Part(doc.text, doc.doc_id, True, doc.replaced)

    def count_documents(self, limit: int) -> int:
        """Non-blank documents, counting no further than `limit` (a one-document file is read through once)."""
        count = 0
        for part in self.parts("train" if self.has_splits else None):
            if part.last and (part.doc_id is None or part.text.strip()):  # text files give no blank documents
                count += 1
                if count >= limit:
                    break
        return count

    def separator(self, file: DataFile) -> bytes | None:
        """A text file's document separator, found once per source (it takes a pass over the file)."""
        return self._cached(f"separator:{file.path}", lambda: txt_separator(file))

    def _cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._resolved:
            self._resolved[key] = make()
        return self._resolved[key]

    def _hub_args(self) -> tuple[str, str | None, str | None]:
        where = self.hub_location()
        return where.repo, self.config, where.revision

    def _hub_files(self, split: str) -> list[str] | None:
        """Resolved once per split (it asks the hub)."""
        return self._cached(f"files:{split}", lambda: hub.parquet_files(*self._hub_args(), split))

    def _check_columns(self, cols: list[str], split: str | None) -> None:
        where = f"{self.spec}" + (f" ({split} split)" if split else "")
        if self.text_field not in cols:
            raise DataError(f"--text-field {self.text_field!r} is not a column of {where}; "
                            f"columns: {', '.join(cols) or '(none)'}")
        if self.id_field is not None and self.id_field not in cols:
            raise DataError(f"--id-field {self.id_field!r} is not a column of {where}; "
                            f"columns: {', '.join(cols) or '(none)'}")

    def _parquet_docs(self, srcs: list[Any], split: str | None, names: list[str] | None = None) -> Iterator[Document]:
        for i, src in enumerate(srcs):
            cols = parquet_columns(src, names[i] if names else None)
            self._check_columns(cols, split)
            id_field = self.id_field or next((c for c in AUTO_ID_FIELDS if c in cols), None)
            keep = [c for c in dict.fromkeys((self.text_field, id_field)) if c]
            yield from self._rows_to_docs(parquet_rows(src, keep), split, keep)

    def _files(self, split: str | None) -> list[DataFile]:
        if split is None:
            return list(self.files)
        return [f for f in self.files if f.split == split]

    def _dataset_docs(self, ds: Any, split: str | None) -> Iterator[Document]:
        """A `datasets` stream (non-parquet hub repos), narrowed to the text and id columns."""
        cols = ds.column_names
        if cols is not None:
            self._check_columns(list(cols), split)
            id_field = self.id_field or next((c for c in AUTO_ID_FIELDS if c in cols), None)
            ds = ds.select_columns([c for c in dict.fromkeys((self.text_field, id_field)) if c])
            cols = list(ds.column_names)
        yield from self._rows_to_docs(ds, split, cols)

    def _rows_to_docs(self, rows: Iterable[dict], split: str | None, columns: list[str] | None) -> Iterator[Document]:
        id_field = self.id_field
        if id_field is None and columns is not None:
            id_field = next((c for c in AUTO_ID_FIELDS if c in columns), None)
        auto = self.id_field is None and columns is None
        for row in rows:
            if self.text_field not in row:
                raise DataError(f"--text-field {self.text_field!r} is missing from a row of {self.spec}; "
                                f"columns: {', '.join(row)}")
            key = next((c for c in AUTO_ID_FIELDS if c in row), None) if auto else id_field
            raw_id = row.get(key) if key else None
            yield _make_doc(None if raw_id is None or raw_id == "" else str(raw_id), row[self.text_field], split)


def _txt_parts(file: DataFile, separator: bytes | None) -> Iterator[Part]:
    """Decoded as the whole document would be: invalid bytes become U+FFFD, counted, even across pieces."""
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    for piece, first, last in txt_pieces(file, separator=separator):
        if first:
            decoder.reset()
        text, replaced = clean_text(decoder.decode(piece, final=last))
        yield Part(text, None, last, replaced)


def _make_doc(doc_id: str | None, text: Any, split: str | None) -> Document:
    text = "" if text is None else str(text)
    text, replaced = clean_text(text)
    return Document(doc_id=doc_id or text_hash_id(text), text=text, split=split, replaced=replaced)


def _read_parquet(source: Source, files: list[DataFile], split: str | None) -> Iterator[Document]:
    return source._parquet_docs([f.open for f in files], split, [f.name for f in files])


def _read_jsonl(source: Source, files: list[DataFile], split: str | None) -> Iterator[Document]:
    for f in files:
        yield from source._rows_to_docs(jsonl_rows(f), split, None)


def _read_txt(source: Source, files: list[DataFile], split: str | None) -> Iterator[Document]:
    for f in files:
        for text in txt_documents(f, source.separator(f)):
            yield _make_doc(None, text, split)


_READERS: dict[str, Callable[[Source, list[DataFile], str | None], Iterator[Document]]] = {
    "parquet": _read_parquet, "jsonl": _read_jsonl, "txt": _read_txt}
_COLUMNS: dict[str, Callable[[DataFile], list[str]]] = {
    "parquet": lambda f: parquet_columns(f.open, f.name), "jsonl": jsonl_columns, "txt": lambda f: list(TXT_COLUMNS)}


def open_source(spec: str, *, text_field: str = "text", id_field: str | None = None,
                config: str | None = None, revision: str | None = None) -> Source:
    """Parse `--source` (source_spec.py) and find its data: a hub repo, or the files of a path or URL."""
    parsed = parse_source(spec)
    common = {"text_field": text_field, "id_field": id_field}
    if parsed.hub is not None:
        default = parsed.hub.default_config
        return Source(spec=parsed.text, config=parsed.config or config or default,
                      revision=parsed.revision or revision, hub=parsed.hub, **common)
    if parsed.kind == "local" and not Path(parsed.location).exists():
        raise DataError(f"local source path {parsed.location!r} does not exist; "
                        "expected a parquet/jsonl/txt file (.gz/.bz2/.zst too) or a folder of them")
    return Source(spec=parsed.text, config=config, revision=revision, root=parsed.location,
                  files=list_files(parsed.location), **common)

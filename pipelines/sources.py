"""Where documents come from: HF hub datasets (streamed) or local parquet/jsonl/txt files.

Every source yields `Document(doc_id, text, split)`. Hub parquet repos are
resolved to their files by `datasets` (hub.py) and then read by the same
row-group reader as local parquet (parquet_io.py), so the offline tests on the
parquet samples exercise the code path the hub uses.

A source has its *own* split (pg19, TinyStories, a folder of train/validation
files) or none (FineWeb): then prepare splits by a hash of the doc id.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightshift.pipelines import hub
from nightshift.pipelines.errors import DataError
from nightshift.pipelines.local_files import clean_text, jsonl_columns, jsonl_rows, txt_documents
from nightshift.pipelines.parquet_io import parquet_columns, parquet_rows

log = logging.getLogger(__name__)

FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".txt": "txt"}
SPLIT_WORDS = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
               "dev": "validation", "test": "test"}
AUTO_ID_FIELDS = ("id", "url")
TXT_COLUMNS = ["text"]


@dataclass(frozen=True, slots=True)
class HubSpec:
    repo: str
    default_config: str | None
    splits: tuple[str, ...] | None  # the source's own train/validation split names, if it has them


HUB_SOURCES: dict[str, HubSpec] = {
    "pg19": HubSpec("deepmind/pg19", None, ("train", "validation")),
    "fineweb": HubSpec("HuggingFaceFW/fineweb", "sample-10BT", None),
    "fineweb-edu": HubSpec("HuggingFaceFW/fineweb-edu", "sample-10BT", None),
    "tinystories": HubSpec("roneneldan/TinyStories", None, ("train", "validation")),
}
ACCEPTED = ", ".join([*HUB_SOURCES, "local:PATH"])


@dataclass(frozen=True, slots=True)
class Document:
    doc_id: str
    text: str
    split: str | None = None  # the source's own split name, None for unsplit sources
    replaced: int = 0  # invalid UTF-8 sequences turned into U+FFFD


def text_hash_id(text: str) -> str:
    """A stable id for rows without one: the same text always lands in the same split."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class LocalFile:
    path: Path
    rel: str
    format: str
    split: str | None


@dataclass(slots=True)
class Source:
    """A resolved `--source`: knows its files or hub repo, its columns and whether it has splits."""

    spec: str
    text_field: str = "text"
    id_field: str | None = None
    config: str | None = None
    revision: str | None = None
    hub: HubSpec | None = None
    root: Path | None = None
    files: list[LocalFile] = field(default_factory=list)
    _resolved: dict[str, list[str] | None] = field(default_factory=dict, repr=False)

    @property
    def has_splits(self) -> bool:
        if self.hub is not None:
            return self.hub.splits is not None
        return any(f.split == "validation" for f in self.files) and any(f.split == "train" for f in self.files)

    def fingerprint(self) -> dict[str, Any]:
        """What the data *is*: hub repo/config/revision, or each local file's name, size and sha256."""
        if self.hub is not None:
            return {"repo": self.hub.repo, "config": self.config, "revision": self.revision}
        return {"files": [{"path": f.rel, "bytes": f.path.stat().st_size, "sha256": _file_sha256(f.path)}
                          for f in self.files]}

    def check(self) -> None:
        """Open the data and check the text/id fields before anything is written."""
        for split in (("train", "validation") if self.has_splits else (None,)):
            self._check_columns(self.columns(split), split)

    def columns(self, split: str | None) -> list[str]:
        if self.hub is not None:
            urls = self._hub_files(split or "train")
            if urls is not None:
                return parquet_columns(urls[0])
            ds = hub.stream(self.hub.repo, self.config, self.revision, split or "train")
            cols = ds.column_names
            if cols is None:
                first = next(iter(ds), None)
                cols = list(first) if first else []
            return list(cols)
        found: list[str] = []
        for f in self._files(split):
            cols = (TXT_COLUMNS if f.format == "txt" else jsonl_columns(f.path) if f.format == "jsonl"
                    else parquet_columns(str(f.path)))
            found += [c for c in cols if c not in found]
        return found

    def _hub_files(self, split: str) -> list[str] | None:
        """Resolved once per split (it asks the hub)."""
        if split not in self._resolved:
            self._resolved[split] = hub.parquet_files(self.hub.repo, self.config, self.revision, split)
        return self._resolved[split]

    def _check_columns(self, cols: list[str], split: str | None) -> None:
        where = f"{self.spec}" + (f" ({split} split)" if split else "")
        if self.text_field not in cols:
            raise DataError(f"--text-field {self.text_field!r} is not a column of {where}; "
                            f"columns: {', '.join(cols) or '(none)'}")
        if self.id_field is not None and self.id_field not in cols:
            raise DataError(f"--id-field {self.id_field!r} is not a column of {where}; "
                            f"columns: {', '.join(cols) or '(none)'}")

    def documents(self, split: str | None = None) -> Iterator[Document]:
        """Documents of one of the source's own splits (or of everything when split is None)."""
        if self.hub is not None:
            urls = self._hub_files(split or "train")
            if urls is not None:
                yield from self._parquet_docs(urls, split)
            else:
                yield from self._dataset_docs(hub.stream(self.hub.repo, self.config, self.revision,
                                                         split or "train"), split)
            return
        for fmt, group in itertools.groupby(self._files(split), key=lambda f: f.format):
            files = list(group)
            if fmt == "parquet":
                yield from self._parquet_docs([str(f.path) for f in files], split)
            elif fmt == "jsonl":
                for f in files:
                    yield from self._rows_to_docs(jsonl_rows(f.path), split, None)
            else:
                for f in files:
                    for text in txt_documents(f.path):
                        yield _make_doc(None, text, split)

    def _parquet_docs(self, urls: list[str], split: str | None) -> Iterator[Document]:
        for url in urls:
            cols = parquet_columns(url)
            self._check_columns(cols, split)
            id_field = self.id_field or next((c for c in AUTO_ID_FIELDS if c in cols), None)
            keep = [c for c in dict.fromkeys((self.text_field, id_field)) if c]
            yield from self._rows_to_docs(parquet_rows(url, keep), split, keep)

    def _files(self, split: str | None) -> list[LocalFile]:
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


def _make_doc(doc_id: str | None, text: Any, split: str | None) -> Document:
    text = "" if text is None else str(text)
    text, replaced = clean_text(text)
    return Document(doc_id=doc_id or text_hash_id(text), text=text, split=split, replaced=replaced)


def open_source(spec: str, *, text_field: str = "text", id_field: str | None = None,
                config: str | None = None, revision: str | None = None) -> Source:
    """Parse `--source`: a hub name or `local:PATH` (file or folder)."""
    if spec in HUB_SOURCES:
        hub = HUB_SOURCES[spec]
        return Source(spec=spec, text_field=text_field, id_field=id_field, config=config or hub.default_config,
                      revision=revision, hub=hub)
    if not spec.startswith("local:"):
        raise DataError(f"unknown source {spec!r}; accepted: {ACCEPTED}")
    root = Path(spec[len("local:"):]).expanduser()
    if not root.exists():
        raise DataError(f"local source path {str(root)!r} does not exist; "
                        "expected a parquet/jsonl/txt file or a folder of them")
    root = root.resolve()
    files = _local_files(root)
    return Source(spec=f"local:{root}", text_field=text_field, id_field=id_field, config=config,
                  revision=revision, root=root, files=files)


def _local_files(root: Path) -> list[LocalFile]:
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    found = [p for p in paths if _format(p) is not None]
    if not found:
        raise DataError(f"no data files in {str(root)!r}; accepted: {', '.join(sorted(FORMATS))} files")
    base = root.parent if root.is_file() else root
    splits = {p: _split_of(p) for p in found}
    split_mode = all(splits.values()) and {"train", "validation"} <= set(splits.values())
    if not split_mode and any(splits.values()) and root.is_dir():
        log.warning("%s: not every file is named by split (train/validation/test); splitting by doc-id hash", root)
    return [LocalFile(path=p, rel=p.relative_to(base).as_posix(), format=_format(p),
                      split=splits[p] if split_mode else None) for p in found]


def _format(path: Path) -> str | None:
    return FORMATS.get(path.suffix.lower())


def _split_of(path: Path) -> str | None:
    """`train.parquet`, `validation-00000-of-00001.parquet`, `TinyStories_valid_head.txt` -> its split."""
    words = re.split(r"[-_.\s]+", path.stem.lower())
    for word in words:
        if word in SPLIT_WORDS:
            return SPLIT_WORDS[word]
    return None


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    return h.hexdigest()

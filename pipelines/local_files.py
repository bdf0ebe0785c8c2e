"""Plain-text and JSON-lines readers for data files (local or fsspec URL), streaming and tolerant of bad UTF-8.

Parquet goes through parquet_io like the hub sources (see sources.py); these
two formats are read here so that invalid UTF-8 becomes U+FFFD with a count
(recorded in the manifest) instead of a crash deep inside a JSON parser.

A text file's documents stream as byte pieces (`txt_pieces`): a document
longer than memory (text8, enwik8: one document of 100 MB) passes through in
1 MB blocks, with only the unfinished end of a block held back, and the
whole-document reader is the same pieces joined. Holding back every trailing
whitespace byte (and a possible `<|endoftext|>` prefix), and looking for blank
lines only before it (a run of blank lines may go on in the next block), makes
the pieces exactly what splitting the whole file would give: separators are
whitespace (or the marker), so none can straddle what was already given out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

from nightshift.pipelines.data_files import DataFile
from nightshift.pipelines.errors import DataError

EOT_MARKER = b"<|endoftext|>"
_BLANK_LINES = re.compile(rb"\n(?:[ \t\r\f\v]*\n)+")
_SURROGATES = re.compile("[\ud800-\udfff]")
_BLOCK = 1 << 20


def clean_text(text: str) -> tuple[str, int]:
    """Replace lone surrogates (undecodable bytes, bad JSON escapes) by U+FFFD; return the count."""
    try:
        text.encode("utf-8")
        return text, 0
    except UnicodeEncodeError:
        return _SURROGATES.subn("\ufffd", text)


def decode_utf8(data: bytes) -> str:
    """Strict where possible; each invalid byte becomes one lone surrogate for `clean_text` to count."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="surrogateescape")


def txt_separator(file: DataFile) -> bytes | None:
    """`<|endoftext|>` between documents when the file uses it (TinyStoriesV2), else blank lines."""
    tail = b""
    with file.open() as fh:
        while block := fh.read(_BLOCK):
            if EOT_MARKER in tail + block:
                return EOT_MARKER
            tail = block[-len(EOT_MARKER):]
    return None


def _held(pending: bytes, at_least: int) -> int:
    """Trailing bytes to keep back: every trailing whitespace byte, and at least `at_least` (a marker prefix)."""
    keep = len(pending) - len(pending.rstrip())
    if keep < at_least:
        body = pending[:max(0, len(pending) - at_least)]
        keep = len(pending) - len(body.rstrip())
    return keep


def txt_pieces(file: DataFile, block_size: int | None = None,
               separator: bytes | None | Callable[[DataFile], bytes | None] = txt_separator,
               ) -> Iterator[tuple[bytes, bool, bool]]:
    """Each document of a text file as byte pieces (piece, first, last), blank documents left out.

    `separator`: the file's separator if already known (finding it reads the whole file once more).
    """
    block_size = block_size or _BLOCK
    sep = separator(file) if callable(separator) else separator
    at_least = len(EOT_MARKER) - 1 if sep else 0
    pending, started = b"", False

    def finish(part: bytes) -> Iterator[tuple[bytes, bool, bool]]:
        if started:
            yield part.rstrip(b"\n\r"), False, True
        elif part.strip():
            yield part.strip(b"\n\r"), True, True

    with file.open() as fh:
        while block := fh.read(block_size):
            data = pending + block
            final = len(data) if sep else len(data.rstrip())  # a blank-line run may go on in the next block
            parts = _split(data[:final], sep)
            rest = parts.pop() + data[final:]
            for part in parts:
                yield from finish(part)
                started = False
            keep = _held(rest, at_least)
            body, pending = rest[:len(rest) - keep], rest[len(rest) - keep:]
            if not started:
                body = body.lstrip(b"\n\r")
            if body:  # ends in a non-whitespace byte: nothing after it can be stripped from this document
                yield body, not started, False
                started = True
    for part in _split(pending, sep):
        yield from finish(part)
        started = False


def _split(data: bytes, sep: bytes | None) -> list[bytes]:
    return data.split(sep) if sep else _BLANK_LINES.split(data)


def txt_documents(file: DataFile, separator: bytes | None | Callable[[DataFile], bytes | None] = txt_separator,
                  ) -> Iterator[str]:
    """Documents of a text file, read in 1 MB blocks (never more than one document in memory)."""
    pieces: list[bytes] = []
    for piece, _, last in txt_pieces(file, separator=separator):
        pieces.append(piece)
        if last:
            yield decode_utf8(b"".join(pieces))
            pieces = []


def jsonl_rows(file: DataFile) -> Iterator[dict]:
    """One JSON object per line; blank lines skipped; a malformed line names file and line number."""
    with file.open() as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(decode_utf8(raw))
            except json.JSONDecodeError as exc:
                raise DataError(f"{file.name}:{lineno} is not valid JSON ({exc.msg}); "
                                "expected one JSON object per line") from None
            if not isinstance(row, dict):
                raise DataError(f"{file.name}:{lineno} is a JSON {type(row).__name__}; "
                                "expected one JSON object per line")
            yield row


def jsonl_columns(file: DataFile) -> list[str]:
    for row in jsonl_rows(file):
        return list(row)
    return []

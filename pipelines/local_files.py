"""Plain-text and JSON-lines readers for local corpora, streaming and tolerant of bad UTF-8.

Parquet goes through `datasets` like the hub sources (see sources.py); these
two formats are read here so that invalid UTF-8 becomes U+FFFD with a count
(recorded in the manifest) instead of a crash deep inside a JSON parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

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


def txt_separator(path: Path) -> bytes | None:
    """`<|endoftext|>` between documents when the file uses it (TinyStoriesV2), else blank lines."""
    tail = b""
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            if EOT_MARKER in tail + block:
                return EOT_MARKER
            tail = block[-len(EOT_MARKER):]
    return None


def txt_documents(path: Path) -> Iterator[str]:
    """Documents of a text file, read in 1 MB blocks (never the whole file)."""
    sep = txt_separator(path)
    pending = b""
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            pending += block
            parts = pending.split(sep) if sep else _BLANK_LINES.split(pending)
            pending = parts.pop()
            for part in parts:
                if part.strip():
                    yield decode_utf8(part.strip(b"\n\r"))
    if pending.strip():
        yield decode_utf8(pending.strip(b"\n\r"))


def jsonl_rows(path: Path) -> Iterator[dict]:
    """One JSON object per line; blank lines skipped; a malformed line names file and line number."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(decode_utf8(raw))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno} is not valid JSON ({exc.msg}); "
                                "expected one JSON object per line") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno} is a JSON {type(row).__name__}; expected one JSON object per line")
            yield row


def jsonl_columns(path: Path) -> list[str]:
    for row in jsonl_rows(path):
        return list(row)
    return []

"""Artifacts leave the process redacted too: a config.json with a token in it is uploaded masked.

Only text-like files are inspected (JSON structurally, so a `"hf_token": ...`
entry loses its value; other text by pattern); binaries (checkpoints, images)
go as they are. When nothing needs masking the original path is used, so the
common case costs one read and no copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator

from nightshift.orchestrator.tracking.sanitize import redact_text, sanitize_structure

TEXT_SUFFIXES = frozenset({".json", ".jsonl", ".txt", ".md", ".log", ".yaml", ".yml", ".toml", ".ini",
                           ".cfg", ".env", ".csv", ".html", ".py", ".sh"})
MAX_INSPECTED_BYTES = 32 * 1024 * 1024  # larger "text" is data, not configuration


def _redacted_content(path: str) -> str | None:
    """The masked text of `path`, or None when it is not text or needs no masking."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in TEXT_SUFFIXES or os.path.getsize(path) > MAX_INSPECTED_BYTES:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        return None
    if suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if data is not None:
            clean = sanitize_structure(data)
            return None if clean == data else json.dumps(clean, indent=2, sort_keys=True, ensure_ascii=False)
    masked = redact_text(text)
    return None if masked == text else masked


def _needs_copy(path: str) -> bool:
    if os.path.isfile(path):
        return _redacted_content(path) is not None
    return any(_redacted_content(os.path.join(root, n)) is not None
               for root, _dirs, names in os.walk(path) for n in names)


@contextlib.contextmanager
def redacted_artifact(path: str) -> Iterator[str]:
    """Yield `path` itself, or a temporary copy (same base name) with every secret masked."""
    if not _needs_copy(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="nightshift-redacted-") as tmp:
        target = os.path.join(tmp, os.path.basename(os.path.normpath(path)))
        if os.path.isdir(path):
            shutil.copytree(path, target)
            files = [os.path.join(r, n) for r, _d, names in os.walk(target) for n in names]
        else:
            shutil.copyfile(path, target)
            files = [target]
        for name in files:
            masked = _redacted_content(name)
            if masked is not None:
                with open(name, "w", encoding="utf-8") as fh:
                    fh.write(masked)
        yield target

"""Content addressing: readable slug + sha256 of the canonical JSON of the whole config.

Hashing the *whole* config (not an opt-in subset, as marin's `versioned()`)
means a changed field can never silently reuse an old artifact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any

from nightshift.pipelines.errors import DataError

HEX_DIGITS = 16  # >= 12 required by the design; 16 keeps collisions irrelevant
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,120}-[0-9a-f]{12,64}$")
_SLUG_RE = re.compile(r"[^a-z0-9._-]+")


def _plain(obj: Any) -> Any:
    """Turn dataclasses / tuples / paths into JSON-ready values, deterministically."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and obj != obj:  # NaN has no canonical JSON
        raise DataError("NaN cannot be part of a content id; use a finite value")
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, UTF-8: the same config always gives the same bytes."""
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(obj: Any, n: int = HEX_DIGITS) -> str:
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:n]


def slugify(text: str) -> str:
    slug = _SLUG_RE.sub("-", text.lower()).strip("-.")
    return slug[:80] or "x"


def content_id(slug: str, payload: Any) -> str:
    """`<slug>-<16 hex>`; the slug is for people, the hex is the identity."""
    return f"{slugify(slug)}-{digest(payload)}"


def validate_id(value: str, what: str = "id") -> str:
    """Refuse anything that could escape the store (`..`, `/`, empty) before it becomes a path."""
    if not isinstance(value, str) or not _ID_RE.match(value) or ".." in value:
        raise DataError(
            f"invalid {what} {value!r}: expected '<slug>-<12+ hex digits>' "
            "(lowercase letters, digits, '.', '_', '-'; no '/' or '..')"
        )
    return value

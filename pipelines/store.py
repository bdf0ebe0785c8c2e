"""One object store behind every artifact: a local folder, s3://, or a mounted Modal volume.

Everything goes through fsspec so the same code writes to a laptop disk and to
S3. Writes that other readers rely on are atomic: local files are written to a
temporary name and renamed; S3 objects are atomic per PUT already.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

from pipelines.errors import DataError

DEFAULT_STORE_ENV = "NIGHTSHIFT_STORE"


def default_store_url() -> str:
    """`$NIGHTSHIFT_STORE`, else `./.nightshift` (absolute), so a laptop needs no setup."""
    return os.environ.get(DEFAULT_STORE_ENV) or str(Path(".nightshift").resolve())


@dataclass(slots=True)
class Store:
    """A root URL plus its fsspec filesystem; paths below are '/'-joined and relative to the root."""

    url: str
    fs: Any = field(repr=False, default=None)
    root: str = ""

    @classmethod
    def open(cls, url: str | None = None) -> "Store":
        url = url or default_store_url()
        if "://" not in url:
            url = str(Path(url).expanduser().resolve())
        try:
            fs, root = fsspec.core.url_to_fs(url, **_storage_options(url))
        except (ValueError, ImportError) as exc:
            raise DataError(
                f"store URL {url!r} is not usable ({exc}); accepted: a local path, file://, s3://bucket/prefix"
            ) from None
        return cls(url=url.rstrip("/"), fs=fs, root=root.rstrip("/"))

    @property
    def is_local(self) -> bool:
        protocol = self.fs.protocol
        return "file" in (protocol if isinstance(protocol, (tuple, list)) else (protocol,))

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts) if parts else self.root

    def uri(self, *parts: str) -> str:
        """Full URL of a path in this store (what users and MLflow see)."""
        return posixpath.join(self.url, *parts) if parts else self.url

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def read_bytes(self, *parts: str) -> bytes:
        return self.fs.cat_file(self.path(*parts))

    def read_json(self, *parts: str) -> Any:
        return json.loads(self.read_bytes(*parts))

    def write_bytes(self, data: bytes, *parts: str) -> None:
        """Atomic: a reader sees the old content or the new one, never a prefix."""
        target = self.path(*parts)
        if self.is_local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        else:
            self.fs.pipe_file(target, data)

    def write_json(self, obj: Any, *parts: str) -> None:
        self.write_bytes(json.dumps(obj, indent=2, sort_keys=True).encode("utf-8"), *parts)

    def put_file(self, local_path: str, *parts: str) -> None:
        """Upload a local file atomically (tmp + rename locally, single PUT on S3)."""
        target = self.path(*parts)
        if self.is_local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
            self.fs.put_file(local_path, tmp)
            os.replace(tmp, target)
        else:
            self.fs.put_file(local_path, target)

    def listdir(self, *parts: str) -> list[str]:
        """Names (not paths) directly under a folder; empty if it does not exist."""
        base = self.path(*parts)
        try:
            entries = self.fs.ls(base, detail=False)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(e.rstrip("/")) for e in entries)

    def remove(self, *parts: str, recursive: bool = False) -> None:
        target = self.path(*parts)
        if self.fs.exists(target):
            self.fs.rm(target, recursive=recursive)

    def check_writable(self) -> None:
        """Fail early with one line instead of half-way through a job."""
        probe = f".write-probe-{uuid.uuid4().hex[:8]}"
        try:
            self.write_bytes(b"ok", probe)
            self.remove(probe)
        except Exception as exc:  # noqa: BLE001 - any backend error means "not writable"
            raise DataError(f"store {self.url!r} is not writable: {type(exc).__name__}: {exc}") from None


def _storage_options(url: str) -> dict[str, Any]:
    """S3 endpoint from the standard AWS_ENDPOINT_URL (MinIO, moto, R2...)."""
    if url.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            return {"client_kwargs": {"endpoint_url": endpoint}}
    return {}

"""One object store behind every artifact: a local folder, s3://, or a mounted Modal volume.

Everything goes through fsspec so the same code writes to a laptop disk and to
S3. Writes that other readers rely on are atomic: local files are written to a
temporary name and renamed; S3 objects are atomic per PUT already.

It is also the one place where store files are read and written, so damage
and full disks read the same everywhere: a JSON file that is truncated, not
JSON, or of the wrong shape becomes a `StoreFileError` naming the file and
what to do (each reader passes a `FileSpec`); a write that runs out of space
becomes a `StoreFullError` naming the path and the bytes it needed, with the
temporary file removed and the previous version untouched. `check_access`
turns missing or wrong S3 credentials, an unreachable endpoint and a missing
bucket into one line before any work starts.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import os
import posixpath
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

from nightshift.pipelines.errors import DataError

DEFAULT_STORE_ENV = "NIGHTSHIFT_STORE"
FAULTS_ENV = "NIGHTSHIFT_STORE_FAULTS"  # drills only: "enospc:<glob>" fails writes to matching paths
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_FULL_CODES = ("XMinioStorageFull", "InsufficientStorage", "QuotaExceeded")  # object stores that fill up


class StoreFileError(DataError):
    """A store file that exists but cannot be used (truncated, not JSON, wrong shape)."""


class StoreFullError(DataError):
    """No space left where the store writes; the previous version of the file is intact."""


@dataclass(frozen=True, slots=True)
class FileSpec:
    """What one kind of store file must hold, and what a user whose copy is damaged should do.

    fields: dotted paths that must exist with one of the given types; `a.b[].c`
        checks `c` in every element of the list `a.b`.
    check: a deeper test returning a problem in words (or None when the value is fine).
    """

    what: str  # e.g. "dataset manifest"
    fix: str  # e.g. "delete it and re-run the same `nightshift prepare`"
    fields: Mapping[str, type | tuple[type, ...]] = field(default_factory=dict)
    check: Callable[[Any], str | None] | None = None


GENERIC = FileSpec(what="store file", fix="restore it from a copy or delete it and re-run the command that wrote it")


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
            fs, root = fsspec.core.url_to_fs(url, **storage_options(url))
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

    def read_json(self, *parts: str, spec: FileSpec | None = None) -> Any:
        """A JSON store file, checked against `spec`; damage is a one-line `StoreFileError`.

        A missing file still raises FileNotFoundError: callers decide what absence means.
        """
        return parse_json(self._read_checked(*parts, spec=spec), self.uri(*parts), spec)

    def read_jsonl(self, *parts: str, spec: FileSpec | None = None) -> list[Any]:
        """Every record of a JSON-lines store file, each checked like `read_json`."""
        where = self.uri(*parts)
        text = parse_text(self._read_checked(*parts, spec=spec), where, spec)
        return [parse_json(line.encode("utf-8"), f"{where} line {n}", spec)
                for n, line in enumerate(text.splitlines(), 1) if line.strip()]

    def _read_checked(self, *parts: str, spec: FileSpec | None) -> bytes:
        try:
            return self.read_bytes(*parts)
        except (IsADirectoryError, PermissionError) as exc:
            spec = spec or GENERIC
            raise StoreFileError(f"{spec.what} {self.uri(*parts)} cannot be read ({type(exc).__name__}: "
                                 f"{exc}); {spec.fix}") from None

    def write_bytes(self, data: bytes, *parts: str) -> None:
        """Atomic: a reader sees the old content or the new one, never a prefix."""
        target = self.path(*parts)
        with self._space_checked(target, self.uri(*parts), len(data)):
            if self.is_local:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
                try:
                    with open(tmp, "wb") as fh:
                        fh.write(data)
                        fh.flush()
                        os.fsync(fh.fileno())
                    os.replace(tmp, target)
                finally:
                    _drop(tmp)  # a full disk leaves no half-written temporary behind
            else:
                self.fs.pipe_file(target, data)

    def write_json(self, obj: Any, *parts: str) -> None:
        self.write_bytes(json.dumps(obj, indent=2, sort_keys=True).encode("utf-8"), *parts)

    def put_file(self, local_path: str, *parts: str) -> None:
        """Upload a local file atomically (tmp + rename locally, single PUT on S3)."""
        target = self.path(*parts)
        with self._space_checked(target, self.uri(*parts), _size_or_none(local_path)):
            if self.is_local:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
                try:
                    self.fs.put_file(local_path, tmp)
                    os.replace(tmp, target)
                finally:
                    _drop(tmp)
            else:
                self.fs.put_file(local_path, target)

    @contextlib.contextmanager
    def _space_checked(self, target: str, uri: str, needed: int | None) -> Iterator[None]:
        """Turn "no space left" (disk, quota, a full object store) into one `StoreFullError` line."""
        try:
            _inject_fault(self, target)
            yield
        except OSError as exc:
            if not is_out_of_space(exc):
                raise
            raise StoreFullError(space_message(uri, needed, self._free_bytes(target))) from None

    def _free_bytes(self, target: str) -> int | None:
        if not self.is_local:
            return None
        probe = os.path.dirname(target)
        while probe and not os.path.isdir(probe):
            probe = os.path.dirname(probe)
        try:
            return shutil.disk_usage(probe or "/").free
        except OSError:
            return None

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

    def check_access(self) -> None:
        """One line for a missing or wrong S3 credential, an unreachable endpoint or a missing bucket.

        Called before any work starts (the CLI does it when it opens the store); a
        no-op for local folders. Uses a short-timeout client: a dead endpoint must
        not hold a user in botocore's retries for minutes.
        """
        if not self.url.startswith("s3://"):
            return
        bucket = self.root.split("/", 1)[0]
        options = storage_options(self.url)
        endpoint = options.get("client_kwargs", {}).get("endpoint_url", "the default AWS endpoint")
        fs = fsspec.filesystem("s3", skip_instance_cache=True, **options,
                               config_kwargs={"connect_timeout": 5, "read_timeout": 20,
                                              "retries": {"max_attempts": 2, "mode": "standard"}})
        try:
            fs.call_s3("list_objects_v2", Bucket=bucket, MaxKeys=1)
        except Exception as exc:  # noqa: BLE001 - botocore/s3fs raise many types; each is named below
            raise DataError(_access_message(exc, self.url, bucket, endpoint)) from None

    def check_writable(self) -> None:
        """Fail early with one line instead of half-way through a job."""
        probe = f".write-probe-{uuid.uuid4().hex[:8]}"
        try:
            self.write_bytes(b"ok", probe)
            self.remove(probe)
        except Exception as exc:  # noqa: BLE001 - any backend error means "not writable"
            raise DataError(f"store {self.url!r} is not writable: {type(exc).__name__}: {exc}") from None


def parse_text(raw: bytes, where: str, spec: FileSpec | None = None) -> str:
    spec = spec or GENERIC
    if not raw.strip():
        raise StoreFileError(f"{spec.what} {where} is damaged: it is empty (truncated?); {spec.fix}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StoreFileError(f"{spec.what} {where} is damaged: not UTF-8 text (byte {exc.start}); "
                             f"{spec.fix}") from None


def parse_json(raw: bytes, where: str, spec: FileSpec | None = None) -> Any:
    """Bytes of a store file -> its value, or a `StoreFileError` that names `where` and the fix."""
    spec = spec or GENERIC
    text = parse_text(raw, where, spec)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreFileError(f"{spec.what} {where} is damaged: not valid JSON ({exc.msg}, line {exc.lineno} "
                             f"column {exc.colno}; truncated?); {spec.fix}") from None
    problem = shape_problem(value, spec)
    if problem is not None:
        raise StoreFileError(f"{spec.what} {where} is damaged: {problem}; {spec.fix}")
    return value


def shape_problem(value: Any, spec: FileSpec) -> str | None:
    """The first way `value` differs from what `spec` expects, in words; None when it fits."""
    if (spec.fields or spec.check) and not isinstance(value, dict):
        return f"it holds a JSON {_type_name(value)}, expected an object"
    for path, types in spec.fields.items():
        problem = _field_problem(value, path.split("."), path, types)
        if problem is not None:
            return problem
    if spec.check is not None:
        try:
            return spec.check(value)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            return f"unexpected content ({type(exc).__name__}: {exc})"
    return None


def _field_problem(value: Any, keys: list[str], path: str, types: type | tuple[type, ...]) -> str | None:
    key, rest = keys[0], keys[1:]
    each = key.endswith("[]")
    name = key[:-2] if each else key
    if not isinstance(value, dict) or name not in value:
        return f"field {path!r} is missing"
    inner = value[name]
    if each:
        if not isinstance(inner, list):
            return f"field {path.split('[]')[0]!r} holds a {_type_name(inner)}, expected a list"
        for item in inner:
            problem = _field_problem(item, rest, path, types) if rest else _type_problem(item, path, types)
            if problem is not None:
                return problem
        return None
    return _field_problem(inner, rest, path, types) if rest else _type_problem(inner, path, types)


def _type_problem(value: Any, path: str, types: type | tuple[type, ...]) -> str | None:
    accepted = types if isinstance(types, tuple) else (types,)
    if float in accepted and int not in accepted:
        accepted = (*accepted, int)  # JSON writes 2.0 as 2.0 but people (and some writers) write 2
    if isinstance(value, bool) and bool not in accepted:
        ok = False
    else:
        ok = isinstance(value, accepted)
    if ok:
        return None
    names = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in (types if isinstance(types, tuple) else (types,)))
    return f"field {path!r} holds {json.dumps(value, default=str)[:40]} ({_type_name(value)}), expected {names}"


_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
               bool: "true/false", type(None): "null"}


def _type_name(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", int: "integer", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def is_out_of_space(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT from a disk, or an object store's "storage full" answer."""
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    text = f"{exc} {exc.__cause__ or ''}"
    return any(code in text for code in _FULL_CODES)


def space_message(path: str, needed: int | None, free: int | None) -> str:
    """The one line a full disk gets: where, how much, and that the same command resumes."""
    need = f"writing {needed:,} bytes" if needed is not None else "a write"
    have = f" ({free:,} bytes free there)" if free is not None else ""
    return (f"no space left on the device holding {path}: {need} failed{have}; its previous version is intact. "
            "Free space and run the same command again: it resumes where it stopped")


def _inject_fault(store: "Store", target: str) -> None:
    """Drills: NIGHTSHIFT_STORE_FAULTS='enospc:<glob>' fails writes whose store path matches, as a full disk would."""
    spec = os.environ.get(FAULTS_ENV, "")
    if not spec:
        return
    rel = posixpath.relpath(target, store.root) if store.root else target
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kind, _, pattern = part.partition(":")
        if kind == "enospc" and fnmatch.fnmatch(rel, pattern):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)


def _drop(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _size_or_none(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _access_message(exc: BaseException, url: str, bucket: str, endpoint: str) -> str:
    """Name which of credentials / endpoint / bucket is wrong, from whatever botocore or s3fs raised."""
    name = type(exc).__name__
    cause = exc.__cause__
    code = ""
    if cause is not None and hasattr(cause, "response"):
        code = str(cause.response.get("Error", {}).get("Code", ""))
    text = f"{exc} {cause or ''}"
    if name == "ProfileNotFound":
        return f"S3 credentials for store {url}: {exc}; fix AWS_PROFILE or ~/.aws/config"
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return (f"no S3 credentials found for store {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE)")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken") or \
            any(c in text for c in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken")):
        return (f"S3 at {endpoint} rejected the credentials for store {url} ({code or name}): check "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)")
    if code in ("NoSuchBucket",) or isinstance(exc, FileNotFoundError):
        return (f"bucket {bucket!r} does not exist at {endpoint}: create it (e.g. `aws s3 mb s3://{bucket}`) "
                "or fix --store / $NIGHTSHIFT_STORE")
    if code in ("AccessDenied", "AllAccessDisabled") or isinstance(exc, PermissionError):
        return (f"S3 at {endpoint} denied access to store {url} ({code or name}): the credentials work but may not "
                f"list bucket {bucket!r}; grant s3:ListBucket/GetObject/PutObject or use another bucket")
    if "EndpointConnectionError" in name or "ConnectTimeout" in name or "ConnectionError" in name \
            or isinstance(exc, (ConnectionError, TimeoutError)):
        return (f"S3 endpoint {endpoint} is unreachable for store {url} ({name}); check AWS_ENDPOINT_URL and "
                "that the server is up")
    return f"store {url} is not usable: {name}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def storage_options(url: str) -> dict[str, Any]:
    """S3 endpoint from the standard AWS_ENDPOINT_URL (MinIO, moto, R2...)."""
    if url.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            return {"client_kwargs": {"endpoint_url": endpoint}}
    return {}

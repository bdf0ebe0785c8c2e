"""One writer per checkpoint trail: a lease beside the run, renewed while it trains.

Two processes that start the same run (a second terminal, a Ray restart racing
a live worker, a sweep and a `train` of the same cell) would otherwise write
interleaved checkpoints on one trail. The first to start writes
`<run>/lease.json` (owner, host, pid, renewal count) and renews it every
ttl/4 seconds from a background thread; every checkpoint write checks the
lease first, so a process that lost it stops without writing.

Whoever finds the lease held waits: while the holder keeps renewing, up to
1.5 x ttl, then it stops with one line naming the holder. A lease that does
not change for a whole ttl on the waiter's own clock (no clock skew involved),
or whose last renewal is older than 2 x ttl by the wall clock, belongs to a
process that is gone (kill -9, a lost node): the waiter takes it over and the
run resumes from its last checkpoint. So after a crash the next start waits at
most one ttl (default 30 s, `$NIGHTSHIFT_LEASE_SECONDS`); on the machine that
ran the dead holder (same host, boot and pid namespace) it does not wait at
all once that pid no longer exists, which is what a local restart, a rerun
after kill -9 and a Ray restart on one node see.

Every change is a compare-and-swap: on a local disk under an exclusive
`flock` of `lease.json.lock` (processes of one machine; a network filesystem
without working locks gets no guarantee), on S3 with conditional writes
(`If-None-Match: *` to create, `If-Match: <etag>` to renew or take over).
Other fsspec stores get an advisory lease (read, compare, write).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from nightshift.orchestrator.errors import UserError
from nightshift.pipelines.store import Store

log = logging.getLogger(__name__)

LEASE_FILE = "lease.json"
TTL_ENV = "NIGHTSHIFT_LEASE_SECONDS"
MACHINE_ENV = "NIGHTSHIFT_LEASE_MACHINE"  # drills only: pretend to run on another machine
DEFAULT_TTL_S = 30.0


class LeaseHeld(UserError):
    """Another live process owns the run."""


class LeaseLost(UserError):
    """This process's lease was taken over (it stalled past its ttl); it must not write again."""


def lease_ttl() -> float:
    raw = os.environ.get(TTL_ENV, "")
    try:
        ttl = float(raw) if raw else DEFAULT_TTL_S
    except ValueError:
        raise UserError(f"${TTL_ENV}={raw!r}: expected seconds, e.g. 30") from None
    if ttl <= 0:
        raise UserError(f"${TTL_ENV}={raw!r}: must be > 0 seconds")
    return ttl


class NullLease:
    """What non-zero ranks (and trainers used outside `run()`) hold: nothing to check or release."""

    owner: str | None = None
    lost: str | None = None

    def renewed(self) -> bool:
        return True

    def ensure(self) -> None:
        pass

    def release(self) -> None:
        pass


NO_LEASE = NullLease()


class RunLease:
    """The lease on one run folder; `acquire()` once, `ensure()` before each write, `release()` at the end."""

    def __init__(self, store: Store, run_path: tuple[str, ...], *, ttl: float | None = None) -> None:
        self.store, self.run_path = store, tuple(run_path)
        self.run_id = run_path[-1]
        self.ttl = ttl if ttl is not None else lease_ttl()
        self.owner = uuid.uuid4().hex
        self.machine = machine_id()
        self.lost: str | None = None
        self._cas = _backend_for(store, (*run_path, LEASE_FILE))
        self._token: Any = None
        self._seq = 0
        self._acquired_at = time.time()
        self._renewed = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    # ------------------------------------------------------------------ public
    def acquire(self, wait_s: float | None = None) -> None:
        """Take the lease, waiting out a holder that has stopped renewing; `LeaseHeld` if it stays alive."""
        start = time.monotonic()
        seen_token: Any = object()
        seen_at = start
        announced = False
        while True:
            raw, token = self._cas.read()
            if raw is None:
                if self._won(self._cas.create(self._record()), None):
                    return
                continue
            holder = _parse(raw)
            now = time.monotonic()
            if token != seen_token:  # renewed (or taken) since we last looked: its owner is alive
                seen_token, seen_at = token, now
            ttl = float(holder.get("ttl_s") or self.ttl) if holder else self.ttl
            idle = now - seen_at
            if not holder or idle >= ttl or time.time() - float(holder.get("renewed", 0)) > 2 * ttl \
                    or _gone(holder, self.machine):
                if self._won(self._cas.replace(self._record(), token), holder):
                    return
                continue
            limit = wait_s if wait_s is not None else 1.5 * max(ttl, self.ttl) + 1.0
            if now - start >= limit:
                raise LeaseHeld(f"run {self.run_id} is being trained by another process ({_who(holder)}, lease "
                                f"renewed {time.time() - float(holder.get('renewed', 0)):.0f}s ago); wait for it to "
                                f"finish or stop it. If that process is gone, its lease expires {ttl:.0f}s after its "
                                "last renewal and the same command then resumes the run")
            if not announced:
                announced = True
                log.warning("run %s is held by %s; waiting up to %.0fs for it to finish or its lease to expire",
                            self.run_id, _who(holder), limit)
            time.sleep(max(0.05, min(1.0, ttl / 4, limit - (now - start))))

    def renewed(self) -> bool:
        """Renew now; False once another process has taken the run over (or it could not be renewed in time)."""
        self._renew()
        return self.lost is None

    def ensure(self) -> None:
        """Renew now; raise `LeaseLost` if another process has taken the run over."""
        if not self.renewed():
            raise LeaseLost(f"run {self.run_id} lost its lease: {self.lost}; stopping without writing a checkpoint "
                            "(the other process owns the checkpoint trail now)")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            if self.lost is None and self._token is not None:
                try:
                    self._cas.delete(self._token)
                except Exception as exc:  # noqa: BLE001 - it expires on its own
                    log.warning("could not release the lease of run %s (it expires in %.0fs): %s",
                                self.run_id, self.ttl, exc)
            self._token = None

    # ----------------------------------------------------------------- internals
    def _record(self) -> bytes:
        self._seq += 1
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "machine": self.machine,
                           "pid": os.getpid(),
                           "run_id": self.run_id, "acquired": self._acquired_at, "renewed": time.time(),
                           "seq": self._seq, "ttl_s": self.ttl}, sort_keys=True).encode("utf-8")

    def _won(self, token: Any, holder: dict[str, Any] | None) -> bool:
        if token is None:
            return False
        if holder and holder.get("owner") != self.owner:
            why = "its process no longer exists" if _gone(holder, self.machine) else \
                f"not renewed for a whole ttl ({float(holder.get('ttl_s') or self.ttl):.0f}s), so that process is gone"
            log.warning("took over the lease of run %s from %s: %s; resuming from the last checkpoint",
                        self.run_id, _who(holder), why)
        self._token, self._renewed = token, time.monotonic()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.run_id[-12:]}", daemon=True)
        self._thread.start()
        return True

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            self._renew()

    def _renew(self) -> None:
        with self._lock:
            if self.lost is not None or self._token is None:
                return
            try:
                token = self._cas.replace(self._record(), self._token)
            except Exception as exc:  # noqa: BLE001 - a store hiccup; the lease is only lost once it expired
                if time.monotonic() - self._renewed > self.ttl:
                    self.lost = f"it could not be renewed for {self.ttl:.0f}s ({type(exc).__name__}: {exc})"
                elif not self._warned:
                    self._warned = True
                    log.warning("lease renewal of run %s failed, retrying: %s", self.run_id, exc)
                return
            if token is None:
                raw, _ = self._cas.read()
                holder = _parse(raw) if raw is not None else {}
                self.lost = f"taken over by {_who(holder)}" if holder else "its lease file was removed"
                return
            self._token, self._renewed = token, time.monotonic()


def machine_id() -> str:
    """This machine and pid namespace: where a holder's pid can be checked for life (host / boot / pid ns)."""
    override = os.environ.get(MACHINE_ENV)
    if override:
        return override
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot = fh.read().strip()
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""  # no way to tell: holders elsewhere are only judged by expiry
    return f"{socket.gethostname()}/{boot}/{namespace}"


def _gone(holder: dict[str, Any], machine: str) -> bool:
    """True only when the holder ran here and its pid no longer exists (or is a zombie)."""
    if not machine or holder.get("machine") != machine or not isinstance(holder.get("pid"), int):
        return False
    pid = holder["pid"]
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _who(holder: dict[str, Any]) -> str:
    return f"host {holder.get('host', '?')} pid {holder.get('pid', '?')}"


def _parse(raw: bytes) -> dict[str, Any]:
    """A lease record; a damaged one counts as no holder (it cannot be renewed by anyone)."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) and isinstance(value.get("owner"), str) else {}


# ---------------------------------------------------------------- compare-and-swap per store kind
def _backend_for(store: Store, parts: tuple[str, ...]) -> "_Cas":
    if store.is_local:
        return _LocalCas(store, parts)
    if store.url.startswith("s3://"):
        return _S3Cas(store, parts)
    log.warning("store %s has no atomic compare-and-swap here: the run lease is advisory", store.url)
    return _AdvisoryCas(store, parts)


class _Cas:
    """read() -> (bytes | None, version); create/replace -> new version or None when the condition failed."""

    def read(self) -> tuple[bytes | None, Any]:
        raise NotImplementedError

    def create(self, raw: bytes) -> Any:
        raise NotImplementedError

    def replace(self, raw: bytes, token: Any) -> Any:
        raise NotImplementedError

    def delete(self, token: Any) -> None:
        raise NotImplementedError


class _AdvisoryCas(_Cas):
    """Read, compare, write: correct only when starts do not race (the best other stores allow here)."""

    def __init__(self, store: Store, parts: tuple[str, ...]) -> None:
        self.store, self.parts = store, parts

    def read(self) -> tuple[bytes | None, Any]:
        try:
            raw = self.store.read_bytes(*self.parts)
        except FileNotFoundError:
            return None, None
        return raw, raw

    def create(self, raw: bytes) -> Any:
        if self.read()[0] is not None:
            return None
        self.store.write_bytes(raw, *self.parts)
        return raw

    def replace(self, raw: bytes, token: Any) -> Any:
        if self.read()[1] != token:
            return None
        self.store.write_bytes(raw, *self.parts)
        return raw

    def delete(self, token: Any) -> None:
        if self.read()[1] == token:
            self.store.remove(*self.parts)


class _LocalCas(_AdvisoryCas):
    """The advisory steps, each under an exclusive flock: atomic among processes of one machine."""

    def __init__(self, store: Store, parts: tuple[str, ...]) -> None:
        super().__init__(store, parts)
        self.lock_path = store.path(*parts) + ".lock"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        os.makedirs(os.path.dirname(self.lock_path), exist_ok=True)
        fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if this process dies
            yield
        finally:
            os.close(fd)

    def create(self, raw: bytes) -> Any:
        with self._locked():
            return super().create(raw)

    def replace(self, raw: bytes, token: Any) -> Any:
        with self._locked():
            return super().replace(raw, token)

    def delete(self, token: Any) -> None:
        with self._locked():
            super().delete(token)


class _S3Cas(_Cas):
    """S3 conditional writes: the object's ETag is the version."""

    def __init__(self, store: Store, parts: tuple[str, ...]) -> None:
        self.fs = store.fs
        self.bucket, _, self.key = store.path(*parts).partition("/")

    def read(self) -> tuple[bytes | None, Any]:
        from fsspec.asyn import sync

        async def get() -> tuple[bytes, str]:
            response = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self.key)
            async with response["Body"] as body:
                return await body.read(), response["ETag"]

        try:
            return sync(self.fs.loop, get)
        except FileNotFoundError:
            return None, None

    def _put(self, raw: bytes, **condition: str) -> Any:
        try:
            return self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key, Body=raw, **condition)["ETag"]
        except Exception as exc:
            if _precondition_failed(exc):
                return None
            raise

    def create(self, raw: bytes) -> Any:
        return self._put(raw, IfNoneMatch="*")

    def replace(self, raw: bytes, token: Any) -> Any:
        return self._put(raw, IfMatch=token)

    def delete(self, token: Any) -> None:
        try:
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key, IfMatch=token)
        except Exception as exc:
            if not _precondition_failed(exc) and not isinstance(exc, FileNotFoundError):
                raise


def _precondition_failed(exc: BaseException) -> bool:
    for err in (exc, exc.__cause__):
        response = getattr(err, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409") or status in (409, 412):
            return True
    return "PreconditionFailed" in str(exc) or "Precondition" in str(exc.__cause__ or "")

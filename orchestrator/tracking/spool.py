"""A durable, ordered outbox for tracking records the server could not take yet.

Records are numbered JSON files under a store prefix (local folder, s3://,
Modal volume): `<prefix>/0000000007.json`, with copies of any artifact files
in `<prefix>/0000000007.files/`. Files are written before the record that
points at them, so a kill at any moment leaves either a complete record or
none. Replay reads them in number order and removes each after the server
acknowledged it; what a crash between "acknowledged" and "removed" replays
twice is made harmless by the tracker's step filter (metrics) and by MLflow
itself (tags overwrite, equal params and artifacts are accepted again).
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator
from typing import Any

from nightshift.pipelines.store import FileSpec, Store

logger = logging.getLogger(__name__)

_RECORD = re.compile(r"^(\d{10})\.json$")
META = "run.json"
RECORD_SPEC = FileSpec(what="tracking spool record", fields={"kind": str, "seq": int},
                       fix="move it out of the spool folder (the tracking records in it are then lost) and start "
                           "the run again")
META_SPEC = FileSpec(what="tracking spool header", fields={"run_key": str, "experiment": str},
                     fix="delete it: the next start finds the MLflow run by its run key")


class Spool:
    """Numbered records under `store`/`prefix`; one spool per tracked run key."""

    def __init__(self, store: Store, prefix: str) -> None:
        self.store = store
        self.prefix = prefix.strip("/")
        self._next = self._max_seq() + 1

    def __repr__(self) -> str:
        return f"Spool({self.store.uri(self.prefix)!r})"

    @property
    def uri(self) -> str:
        return self.store.uri(self.prefix)

    def _refresh(self) -> None:
        """s3fs caches listings; another process (or our own writes) may have changed the prefix."""
        with contextlib.suppress(Exception):
            self.store.fs.invalidate_cache(self.store.path(self.prefix))

    def _max_seq(self) -> int:
        names = self.pending()
        return int(names[-1][:10]) if names else 0

    def pending(self) -> list[str]:
        """Record names in replay order."""
        self._refresh()
        return [n for n in self.store.listdir(self.prefix) if _RECORD.match(n)]

    def __len__(self) -> int:
        return len(self.pending())

    def append(self, record: dict[str, Any], files: str | None = None) -> str:
        """Write one record (and a copy of the file or folder `files`, if any); returns its name."""
        seq = f"{self._next:010d}"
        self._next += 1
        if files is not None:
            record = {**record, "files": self._copy_in(files, f"{seq}.files")}
        self.store.write_json({**record, "seq": int(seq)}, self.prefix, f"{seq}.json")
        return f"{seq}.json"

    def _copy_in(self, local_path: str, folder: str) -> dict[str, Any]:
        base = os.path.basename(os.path.normpath(local_path))
        if os.path.isdir(local_path):
            for root, _dirs, names in os.walk(local_path):
                rel = os.path.relpath(root, local_path)
                for name in names:
                    parts = [p for p in (folder, base, rel, name) if p and p != "."]
                    self.store.put_file(os.path.join(root, name), self.prefix, *parts)
            return {"folder": folder, "name": base, "is_dir": True}
        self.store.put_file(local_path, self.prefix, folder, base)
        return {"folder": folder, "name": base, "is_dir": False}

    def read(self, name: str) -> dict[str, Any]:
        return self.store.read_json(self.prefix, name, spec=RECORD_SPEC)

    @contextlib.contextmanager
    def local_copy(self, record: dict[str, Any]) -> Iterator[str]:
        """A local path to a spooled artifact (the spool itself when local, else a temporary download)."""
        files = record["files"]
        source = self.store.path(self.prefix, files["folder"], files["name"])
        if self.store.is_local:
            yield source
            return
        with tempfile.TemporaryDirectory(prefix="nightshift-spool-") as tmp:
            target = os.path.join(tmp, files["name"])
            self.store.fs.get(source, target, recursive=bool(files["is_dir"]))
            yield target

    def remove(self, name: str) -> None:
        """Drop an acknowledged record: the pointer first, then its files (an orphaned folder is inert)."""
        self.store.remove(self.prefix, name)
        folder = f"{name[:10]}.files"
        if self.store.exists(self.prefix, folder):
            self.store.remove(self.prefix, folder, recursive=True)

    def read_meta(self) -> dict[str, Any] | None:
        try:
            return self.store.read_json(self.prefix, META, spec=META_SPEC)
        except FileNotFoundError:
            return None

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.store.write_json(meta, self.prefix, META)


def default_spool_prefix(experiment: str, run_key: str) -> str:
    """Default spool location inside a store for one (experiment, run_key): readable and collision-free."""
    from nightshift.pipelines.ids import content_id

    return posixpath.join("tracking-spool", content_id(run_key[-60:], {"experiment": experiment, "run_key": run_key}))

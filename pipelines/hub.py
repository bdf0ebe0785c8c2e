"""HF hub datasets through `datasets`: which parquet files a split has, or a stream for other formats.

Parquet repos (FineWeb, the pg19 mirror, most `hf:` repos) are resolved to
their file URLs and read by parquet_io (bounded memory, the same reader as
local parquet); anything else streams through `datasets.load_dataset`.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from nightshift.pipelines.errors import DataError
from nightshift.pipelines.hub_exports import PARQUET_BRANCH, PARTIAL

log = logging.getLogger(__name__)


def _fail(repo: str, config: str | None, split: str | None, exc: Exception) -> DataError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    where = f"config {config!r}" + (f", split {split!r}" if split else "")
    return DataError(f"cannot open {repo!r} ({where}) on the HF hub: "
                     f"{type(exc).__name__}: {first}; use --source local:PATH for files on disk")


@functools.lru_cache(maxsize=8)
def _builder(repo: str, config: str | None, revision: str | None) -> Any:
    """One builder per (repo, config, revision): each split asks it, and making one asks the hub."""
    import datasets

    try:
        return datasets.load_dataset_builder(repo, config, revision=revision)
    except RuntimeError as exc:
        # datasets >= 4 runs no loading scripts: read the parquet export (aliases check it is whole: hub_exports)
        if revision is not None or "scripts are no longer supported" not in str(exc):
            raise
        log.info("%s: loading script not supported; reading %s", repo, PARQUET_BRANCH)
        return datasets.load_dataset_builder(repo, config, revision=PARQUET_BRANCH)


def _open_builder(repo: str, config: str | None, revision: str | None, split: str | None) -> Any:
    try:
        return _builder(repo, config, revision)
    except Exception as exc:  # noqa: BLE001 - offline, missing config, auth: one line for the user
        raise _fail(repo, config, split, exc) from None


def parquet_files(repo: str, config: str | None, revision: str | None, split: str) -> list[str] | None:
    """The split's parquet file URLs (hf://...), or None when the repo is not parquet."""
    builder = _open_builder(repo, config, revision, split)
    if type(builder).__module__.split(".")[-1] != "parquet":
        return None
    files = (builder.config.data_files or {}).get(split)
    if not files:
        known = ", ".join(str(s) for s in builder.config.data_files or {}) or "(none)"
        raise DataError(f"{repo!r} (config {config!r}) has no {split!r} split; splits: {known}")
    files = [str(f) for f in files]
    if any(f"/{PARTIAL}" in f for f in files):
        log.warning("%s: the %r split is the hub's partial parquet export (a prefix of the split); "
                    "name a parquet repo of the whole dataset to read all of it", repo, split)
    return files


def split_names(repo: str, config: str | None, revision: str | None) -> tuple[str, ...]:
    """The repo's split names (for `hf:` sources, whose splits are not declared)."""
    builder = _open_builder(repo, config, revision, None)
    files = getattr(builder.config, "data_files", None)
    if files:
        return tuple(str(s) for s in files)
    return tuple(str(s) for s in (builder.info.splits or {}))


def stream(repo: str, config: str | None, revision: str | None, split: str) -> Any:
    """A `datasets` IterableDataset for non-parquet hub repos."""
    import datasets

    try:
        return datasets.load_dataset(repo, config, split=split, streaming=True, revision=revision)
    except Exception as exc:  # noqa: BLE001
        raise _fail(repo, config, split, exc) from None

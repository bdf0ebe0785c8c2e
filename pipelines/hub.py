"""HF hub datasets through `datasets`: which parquet files a split has, or a stream for other formats.

Parquet repos (FineWeb, the hub's parquet conversion of pg19) are resolved to
their file URLs and read by parquet_io (bounded memory, the same reader as
local parquet); anything else streams through `datasets.load_dataset`.
"""

from __future__ import annotations

import logging
from typing import Any

from nightshift.pipelines.errors import DataError

log = logging.getLogger(__name__)
PARQUET_BRANCH = "refs/convert/parquet"  # the hub's own parquet export of every public dataset


def _fail(repo: str, config: str | None, split: str, exc: Exception) -> DataError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return DataError(f"cannot open {repo!r} (config {config!r}, split {split!r}) on the HF hub: "
                     f"{type(exc).__name__}: {first}; use --source local:PATH for files on disk")


def _builder(repo: str, config: str | None, revision: str | None) -> Any:
    import datasets

    try:
        return datasets.load_dataset_builder(repo, config, revision=revision)
    except RuntimeError as exc:
        # datasets >= 4 runs no loading scripts (deepmind/pg19 has one): read the parquet export
        if revision is not None or "scripts are no longer supported" not in str(exc):
            raise
        log.info("%s: loading script not supported; reading %s", repo, PARQUET_BRANCH)
        return datasets.load_dataset_builder(repo, config, revision=PARQUET_BRANCH)


def parquet_files(repo: str, config: str | None, revision: str | None, split: str) -> list[str] | None:
    """The split's parquet file URLs (hf://...), or None when the repo is not parquet."""
    try:
        builder = _builder(repo, config, revision)
    except Exception as exc:  # noqa: BLE001 - offline, missing config, auth: one line for the user
        raise _fail(repo, config, split, exc) from None
    if type(builder).__module__.split(".")[-1] != "parquet":
        return None
    files = (builder.config.data_files or {}).get(split)
    if not files:
        known = ", ".join(str(s) for s in builder.config.data_files or {}) or "(none)"
        raise DataError(f"{repo!r} (config {config!r}) has no {split!r} split; splits: {known}")
    return [str(f) for f in files]


def stream(repo: str, config: str | None, revision: str | None, split: str) -> Any:
    """A `datasets` IterableDataset for non-parquet hub repos."""
    import datasets

    try:
        return datasets.load_dataset(repo, config, split=split, streaming=True, revision=revision)
    except Exception as exc:  # noqa: BLE001
        raise _fail(repo, config, split, exc) from None

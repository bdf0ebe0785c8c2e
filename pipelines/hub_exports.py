"""Which hub repo holds a loading-script dataset's *whole* data as parquet: the hub's export or a named mirror.

`datasets` >= 4 runs no loading scripts (deepmind/pg19 is one), so such a repo
is read from the hub's own parquet export (`refs/convert/parquet`). For a
script dataset over 5 GB that export holds only a prefix of each split, in
folders named `partial-<split>/`, or does not exist; reading it would train on
a silently truncated corpus under the full corpus's name. So an alias of a
script repo also names a parquet mirror of the whole dataset, and the export
is used only when its files show every split whole. The listing is a function
argument: the hub is the one thing the offline tests cannot reach.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nightshift.pipelines.errors import DataError

log = logging.getLogger(__name__)

PARQUET_BRANCH = "refs/convert/parquet"  # the hub's own parquet export of every public dataset
PARTIAL = "partial-"  # the export's folder prefix for a split it converted only in part

# (repo, revision) -> the repo's file paths at that revision, or None when the revision does not exist
ListFiles = Callable[[str, str], Sequence[str] | None]


@dataclass(frozen=True, slots=True)
class HubLocation:
    """Where a hub source is read from (what its fingerprint records)."""

    repo: str
    revision: str | None


def hub_listing(repo: str, revision: str) -> Sequence[str] | None:
    """The real listing: `huggingface_hub`'s list_repo_files, None for a missing revision (no export)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RevisionNotFoundError

    try:
        return HfApi().list_repo_files(repo, repo_type="dataset", revision=revision)
    except RevisionNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - offline, auth, network: one line for the user
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"cannot list {repo!r} at {revision!r} on the HF hub: {type(exc).__name__}: {first}; "
                        "use --dataset ID for a prepared dataset or --source local:PATH for files on disk") from None


def export_problem(files: Sequence[str] | None, config: str | None, splits: Sequence[str]) -> str | None:
    """Why the parquet export cannot stand for the whole dataset (None: every split is there, none partial)."""
    if files is None:
        return "does not exist"
    folder = f"{config or 'default'}/"
    parquet = [f for f in files if f.startswith(folder) and f.endswith(".parquet")]
    partial = sorted({f[len(folder):].split("/", 1)[0] for f in parquet if f[len(folder):].startswith(PARTIAL)})
    if partial:
        return f"is partial ({', '.join(p + '/' for p in partial)})"
    missing = [s for s in splits if not any(f.startswith(f"{folder}{s}/") for f in parquet)]
    if missing:
        return f"has no {', '.join(missing)} split under {folder}"
    return None


def whole_parquet(repo: str, mirror: str, config: str | None, splits: Sequence[str],
                  list_files: ListFiles = hub_listing) -> HubLocation:
    """The export of `repo` when it is whole, else the mirror; a fallback is said in one log line."""
    problem = export_problem(list_files(repo, PARQUET_BRANCH), config, splits)
    if problem is None:
        log.info("%s: reading the hub's parquet export (%s)", repo, PARQUET_BRANCH)
        return HubLocation(repo, PARQUET_BRANCH)
    log.warning("%s: the hub's parquet export %s; reading the parquet mirror %s instead", repo, problem, mirror)
    return HubLocation(mirror, None)

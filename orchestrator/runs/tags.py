"""The tags and name every tracked run carries, so the MLflow UI can group and filter them.

Besides nightshift's own tags, runs carry MLflow's standard ones
(`mlflow.source.git.commit`, `mlflow.source.name`, `mlflow.source.type`,
`mlflow.user`), which the UI shows in its Source and User columns. A Modal
container or a KubeRay image has no `.git` and runs as another user, so the
launcher hands its own values to workers in `NIGHTSHIFT_GIT_COMMIT`,
`NIGHTSHIFT_SOURCE_NAME` and `NIGHTSHIFT_USER` (`launcher_env()`); a worker
reads those first and asks git only when they are absent.
"""

from __future__ import annotations

import functools
import getpass
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nightshift.pipelines.sizes import format_size

if TYPE_CHECKING:  # jobs/giant.py imports this module before anything heavy
    from nightshift.orchestrator.runs.config import RunConfig

COMMIT_ENV = "NIGHTSHIFT_GIT_COMMIT"
SOURCE_ENV = "NIGHTSHIFT_SOURCE_NAME"
USER_ENV = "NIGHTSHIFT_USER"
UNKNOWN = "unknown"


def dataset_size(manifest: dict[str, Any]) -> int:
    """The requested training size (--max-bytes) if any, else the bytes actually prepared."""
    cfg = manifest.get("config", {})
    prepared = manifest.get("splits", {}).get("train", {}).get("totals", {}).get("bytes", 0)
    return int(cfg.get("max_bytes") or prepared or 0)


def run_name(config: RunConfig, manifest: dict[str, Any]) -> str:
    """`<family>:<flavor>@<size>`, e.g. `transformer:tiny@4MB`."""
    return f"{config.model.family}:{config.model.flavor}@{format_size(dataset_size(manifest))}"


def git_commit() -> str:
    """$NIGHTSHIFT_GIT_COMMIT (set by the launcher for remote workers), else `git rev-parse HEAD` of this code."""
    handed = os.environ.get(COMMIT_ENV, "").strip()
    return handed or _git_head()


@functools.lru_cache(maxsize=1)
def _git_head() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else UNKNOWN
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN


def source_name(argv: Sequence[str] | None = None) -> str:
    """What launched the run: `nightshift train`, `jobs/giant.py`, ... ($NIGHTSHIFT_SOURCE_NAME wins)."""
    handed = os.environ.get(SOURCE_ENV, "").strip()
    if handed:
        return handed
    argv = list(sys.argv if argv is None else argv)
    if not argv or not argv[0]:
        return "nightshift"
    path = Path(argv[0])
    if path.name in ("nightshift", "cli.py", "__main__.py"):
        command = next((a for a in argv[1:] if not a.startswith("-")), "")
        return f"nightshift {command}".strip()
    return "/".join(path.parts[-2:])


def user() -> str:
    handed = os.environ.get(USER_ENV, "").strip()
    if handed:
        return handed
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return UNKNOWN


def launcher_env() -> dict[str, str]:
    """The launcher's commit, entry point and user, for the environment of remote workers."""
    return {COMMIT_ENV: git_commit(), SOURCE_ENV: source_name(), USER_ENV: user()}


def source_tags(backend: str = "local") -> dict[str, str]:
    """MLflow's standard source tags (the UI's Source and User columns)."""
    return {
        "mlflow.source.git.commit": git_commit(),
        "mlflow.source.name": source_name(),
        "mlflow.source.type": "LOCAL" if backend == "local" else "JOB",
        "mlflow.user": user(),
    }


def run_tags(config: RunConfig, manifest: dict[str, Any], *, backend: str, run_uri: str) -> dict[str, str]:
    tok = manifest.get("tokenizer", {})
    return {
        "dataset.source": str(manifest.get("config", {}).get("source", "")),
        "dataset.size_bytes": str(dataset_size(manifest)),
        "dataset.id": config.dataset_id,
        "dataset.tokenizer": str(tok.get("name", "")),
        "model.family": config.model.family,
        "model.variant": config.model.flavor,
        "model.id": config.model_id,
        "run.id": config.run_id,
        "run.seed": str(config.train.seed),
        "run.uri": run_uri,
        "backend": backend,
        **source_tags(backend),
    }


def experiment_name(source: str) -> str:
    """One MLflow experiment per data source: `pg19`, `fineweb`, or `local-<folder>` for local paths."""
    if source.startswith("local:"):
        return "local-" + (Path(source[6:]).stem or "data")
    return source

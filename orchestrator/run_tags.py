"""The tags and name every tracked run carries, so the MLflow UI can group and filter them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from orchestrator.config import RunConfig
from pipelines.sizes import format_size


def dataset_size(manifest: dict[str, Any]) -> int:
    """The requested training size (--max-bytes) if any, else the bytes actually prepared."""
    cfg = manifest.get("config", {})
    prepared = manifest.get("splits", {}).get("train", {}).get("totals", {}).get("bytes", 0)
    return int(cfg.get("max_bytes") or prepared or 0)


def run_name(config: RunConfig, manifest: dict[str, Any]) -> str:
    """`<family>:<flavor>@<size>`, e.g. `transformer:tiny@4MB`."""
    return f"{config.model.family}:{config.model.flavor}@{format_size(dataset_size(manifest))}"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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
        "git.commit": git_commit(),
    }


def experiment_name(source: str) -> str:
    """One MLflow experiment per data source: `pg19`, `fineweb`, or `local-<folder>` for local paths."""
    if source.startswith("local:"):
        return "local-" + (Path(source[6:]).stem or "data")
    return source

"""Corpus writers and shard digests for the pipeline tests."""

from __future__ import annotations

import json
from pathlib import Path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def shard_hashes(manifest_data: dict, split: str) -> list[str]:
    return [s["sha256"] for s in manifest_data["splits"][split]["shards"]]

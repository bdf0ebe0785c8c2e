"""Datasets for tests: the pg19 sample prepared through the real pipeline, or reached under another name."""

from __future__ import annotations

import os
from pathlib import Path

from nightshift.pipelines.store import Store


def prepare_pg19(store_dir: Path, pg19_dir: Path, *, max_bytes: int = 200_000, valid_bytes: int = 30_000,
                 tokenizer: str = "bytes") -> str:
    from nightshift.pipelines.prepare import PrepareConfig, prepare

    config = PrepareConfig(source=f"local:{pg19_dir}", max_bytes=max_bytes, valid_bytes=valid_bytes,
                           tokenizer=tokenizer)
    return prepare(config, Store.open(str(store_dir)), actors=0, progress=False).dataset_id


def alias_source(root: Path, pg19_dir: Path, name: str) -> str:
    """`local:<root>/<name>`: the pg19 sample's parquet files, symlinked (nothing copied)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation"):
        link = folder / f"{split}.parquet"
        if not link.exists():
            os.symlink(pg19_dir / f"{split}.parquet", link)
    return f"local:{folder}"

"""Backends tests' helpers: a tiny prepared dataset copied into fresh stores, short temp dirs for Ray."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nightshift.pipelines.store import Store


@dataclass(frozen=True)
class TinyData:
    store_dir: Path  # a store holding only the prepared dataset
    dataset_id: str
    source: str


def prepare_tiny(store_dir: Path, pg19_dir: Path) -> str:
    from nightshift.pipelines.prepare import PrepareConfig, prepare

    config = PrepareConfig(source=f"local:{pg19_dir}", max_bytes=200_000, valid_bytes=12_000, tokenizer="bytes")
    return prepare(config, Store.open(str(store_dir)), actors=0, progress=False).dataset_id


def copy_datasets(data: TinyData, target: Path) -> Path:
    """A fresh store with the prepared dataset in it (run ids do not depend on the backend, so two
    runs of one config that must both really train need two stores)."""
    shutil.copytree(data.store_dir / "datasets", target / "datasets")
    return target


def short_tmp(prefix: str) -> str:
    """Ray puts unix sockets under its temp dir: keep the path short (sockets allow ~107 chars)."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")

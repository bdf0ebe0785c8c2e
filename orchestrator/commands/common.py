"""Flags shared by several commands, and how they turn into objects."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pipelines.store import Store, default_store_url


def add_store_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=None, metavar="URL",
                        help=f"artifact store: a path, file:// or s3://bucket/prefix (default: $NIGHTSHIFT_STORE or "
                             f"./.nightshift)")


def add_tracking_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="MLflow tracking URI (default: sqlite inside the local store; 'none' disables)")


def open_store(args: argparse.Namespace) -> Store:
    return Store.open(args.store or default_store_url())


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")

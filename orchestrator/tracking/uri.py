"""Which MLflow tracking URI a process uses: one rule for every entry point.

    --tracking-uri  >  $MLFLOW_TRACKING_URI  >  the embedded sqlite DB of a local store

`nightshift train/sweep/demo/fork/report/ui/serve/eval`, `jobs/train.py`
(`ray job submit`), `jobs/giant.py` (Modal), sweep cells and Ray workers all
call `resolve_tracking_uri`, so the same shell gives the same answer
everywhere. A launcher calls `explicit_tracking_uri` (flag, else its own
environment) and hands the result to workers as a plain argument: a Ray
worker or a Modal container need not share the launcher's environment, yet
tracks where the launcher was told to. "none" / "off" at any level turns
MLflow off (the JSONL history in the store is still written).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from nightshift.pipelines.store import Store

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
TRACKING_DB = "mlflow.db"
DISABLED = frozenset({"none", "off", "false", "0"})


def open_store(store: Store | str | None) -> Store:
    return store if isinstance(store, Store) else Store.open(store)


def default_tracking_uri(store: Store | str | None) -> str | None:
    """`sqlite:///<store>/mlflow.db` for a local store; None for a remote one (sqlite cannot live on S3)."""
    store = open_store(store)
    return f"sqlite:///{store.path(TRACKING_DB)}" if store.is_local else None


def is_disabled(uri: str | None) -> bool:
    return uri is not None and uri.strip().lower() in DISABLED


def explicit_tracking_uri(flag: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """`--tracking-uri` if given, else `$MLFLOW_TRACKING_URI` if set (and not blank), else None.

    What a launcher hands its workers: None lets each worker fall back to its store's embedded DB.
    """
    if flag is not None and flag.strip():
        return flag.strip()
    env = os.environ if environ is None else environ
    value = env.get(TRACKING_URI_ENV, "").strip()
    return value or None


def resolve_tracking_uri(flag: str | None, store: Store | str | None,
                         environ: Mapping[str, str] | None = None) -> str | None:
    """The tracking URI to use: flag > $MLFLOW_TRACKING_URI > `sqlite:///<store>/mlflow.db`.

    Returns "none" when tracking is switched off at the winning level, and None
    when nothing was given and the store is remote (no embedded DB exists).
    """
    uri = explicit_tracking_uri(flag, environ)
    if uri is not None:
        return "none" if is_disabled(uri) else uri
    return default_tracking_uri(store)

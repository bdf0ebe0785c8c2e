"""Flags shared by several commands, and how they turn into objects."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from nightshift.pipelines.store import Store, default_store_url

if TYPE_CHECKING:  # imported where used: parsing flags needs no tracking code
    from nightshift.orchestrator.tracking.naming import RunNaming


def add_store_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=None, metavar="URL",
                        help="artifact store: a path, file:// or s3://bucket/prefix (default: $NIGHTSHIFT_STORE or "
                             "./.nightshift)")


def add_tracking_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite inside the local "
                             "store; 'none' disables)")
    parser.add_argument("--tracking-outage", choices=("auto", "stop", "spool"), default=None,
                        help="if MLflow is unreachable at start: stop, or spool and send later; auto (default): "
                             "spool for a run started before (resume, retry), stop for a new one")


def tracking_uri_of(args: argparse.Namespace) -> str | None:
    """--tracking-uri, else $MLFLOW_TRACKING_URI (None: each process uses its store's embedded DB).

    Resolved here, in the launcher, so Ray workers and Modal containers track where this shell said.
    """
    from nightshift.orchestrator.tracking.uri import explicit_tracking_uri

    return explicit_tracking_uri(getattr(args, "tracking_uri", None))


def add_naming_args(parser: argparse.ArgumentParser, *,
                    run_name: str = "the run's name in MLflow (default: FAMILY:FLAVOR@SIZE)") -> None:
    parser.add_argument("--experiment", default=None, metavar="NAME",
                        help="MLflow experiment (default: $MLFLOW_EXPERIMENT_NAME, else named after the data "
                             "source)")
    parser.add_argument("--run-name", default=None, metavar="NAME",
                        help=run_name)
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        help="an MLflow tag on the run (repeatable), e.g. --tag team=nlp")


def naming_of(args: argparse.Namespace) -> RunNaming:
    """--experiment (else $MLFLOW_EXPERIMENT_NAME), --run-name, --tag: resolved here, in the launcher, and
    handed to workers like the tracking URI."""
    from nightshift.orchestrator.tracking.naming import explicit_naming

    return explicit_naming(getattr(args, "experiment", None), getattr(args, "run_name", None),
                           getattr(args, "tag", None))


def open_store(args: argparse.Namespace) -> Store:
    """The store, checked before any work starts (S3 credentials, endpoint, bucket: one line each)."""
    store = Store.open(args.store or default_store_url())
    store.check_access()
    return store


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def run_exit_code(result: dict) -> int:
    """0 for a finished run; 128 + the signal for one a signal stopped after its checkpoint (130 SIGINT,
    143 SIGTERM: what shells and schedulers expect), 130 for any other interruption."""
    if result.get("stop_reason") != "interrupted":
        return 0
    import signal

    name = result.get("stop_signal")
    return 128 + int(signal.Signals[name]) if name in signal.Signals.__members__ else 130

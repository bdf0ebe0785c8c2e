"""`nightshift report`: report.html + report.json + PNG figures for a sweep or an MLflow experiment."""

from __future__ import annotations

import argparse
import os

from nightshift.orchestrator.commands.common import (
    add_store_arg,
    add_tracking_arg,
    emit_json,
    open_store,
    tracking_uri_of,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="write report.html/report.json/PNGs for a sweep (or experiment) and log them to MLflow",
        description="Val bits/byte vs dataset size, vs compute and tokens (reference compressors beside), "
                    "ablations, throughput, sleep metrics, a "
                    "table of every cell and generated samples. A sweep's report is also attached to its "
                    "MLflow parent run under report/.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--sweep", metavar="ID", help="a sweep id (see `nightshift sweep`) or its MLflow parent run id")
    which.add_argument("--experiment", metavar="NAME",
                       help="every tracked run of an MLflow experiment, e.g. local-pg19")
    p.add_argument("--out", default="report", metavar="DIR", help="output folder (default ./report)")
    p.add_argument("--no-log", action="store_true", help="do not attach the files to the sweep's MLflow run")
    add_store_arg(p)
    add_tracking_arg(p)
    p.add_argument("--json", action="store_true", help="print the written paths as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nightshift.orchestrator.sweeps.report import write_report

    store = open_store(args)
    files = write_report(store, args.sweep, os.path.abspath(args.out), experiment=args.experiment,
                         tracking_uri=tracking_uri_of(args), log_to_parent=not args.no_log)
    if args.json:
        emit_json({"html": files.html, "json": files.json, "plots": list(files.plots), "logged_to": files.logged_to})
        return 0
    print(f"report:  {files.html}")
    print(f"data:    {files.json}")
    print(f"figures: {', '.join(os.path.basename(p) for p in files.plots)}")
    if files.logged_to:
        print(f"attached to MLflow run {files.logged_to} under report/")
    return 0

"""`nightshift` command line: thin parsing, then a call into the library.

User errors print one line (`nightshift: error: ...`) and exit 2 with nothing
half-written; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from nightshift import DISTRIBUTION, __version__
from nightshift.orchestrator.commands import COMMANDS
from nightshift.orchestrator.errors import USER_ERRORS
from nightshift.pipelines.store import is_out_of_space, space_message


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nightshift",
        description="Train attractor, holographic, macro-unit and transformer language models; "
                    "compare them in bits per byte.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="info-level logs")
    parser.add_argument("--version", action="version", version=f"nightshift {__version__} ({DISTRIBUTION})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:  # every listed command must import: a missing one is a broken install, not a skip
        importlib.import_module(f"nightshift.orchestrator.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # stdout carries our own output (and --json documents); MLflow must not print run URLs into it
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # nor progress bars into logs
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlflow").setLevel(max(level, logging.WARNING) if not args.debug else level)
    if getattr(args, "tracking_outage", None):  # the policy reaches every process of the run (Ray workers too)
        os.environ["NIGHTSHIFT_TRACKING_OUTAGE"] = args.tracking_outage
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"nightshift: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk outside the store (a report folder, MLflow's files): one line too
        if args.debug or not is_out_of_space(exc):
            raise
        print(f"nightshift: error: {space_message(exc.filename or 'a file', None, None)} ({exc.strerror})",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nightshift: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

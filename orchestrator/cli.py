# PYTHON_ARGCOMPLETE_OK
"""`nightshift` command line: thin parsing, then a call into the library.

User errors print one line (`nightshift: error: ...`) and exit 2 with nothing
half-written; `--debug` shows the traceback instead. An unknown flag is
answered by its command's usage and the closest flags it has. Shell
completion: argcomplete (`eval "$(register-python-argcomplete nightshift)"`).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys

from nightshift import DISTRIBUTION, __version__
from nightshift.orchestrator.commands import COMMANDS, terminal
from nightshift.orchestrator.errors import USER_ERRORS
from nightshift.pipelines.store import is_out_of_space, space_message


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nightshift",
        description="Train attractor, holographic, macro-unit and transformer language models; "
                    "compare them in bits per byte.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="info-level logs (third-party libraries too)")
    parser.add_argument("--progress-seconds", type=float, default=None, metavar="S",
                        help="without a terminal (logs, nohup, Ray, Modal): a progress line every S seconds "
                             "(default 30; 0: none); with one, progress bars")
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
    _complete(parser)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _refuse_unknown(parser, args, unknown)
    if args.progress_seconds is not None and args.progress_seconds < 0:
        parser.error(f"--progress-seconds {args.progress_seconds:g}: must be >= 0 (0: no progress lines)")
    terminal.configure(verbose=args.verbose, debug=args.debug, progress_seconds=args.progress_seconds)
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


def _complete(parser: argparse.ArgumentParser) -> None:
    """Tab completion of commands and flags; a no-op unless the shell's completion hook called us."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    argcomplete.autocomplete(parser)


def _refuse_unknown(parser: argparse.ArgumentParser, args: argparse.Namespace, unknown: list[str]) -> None:
    """Exit 2 with the command's own usage and, for each unknown flag, the closest ones it accepts."""
    sub = _subparser(parser, args.command)
    flags = [o for a in sub._actions for o in a.option_strings if o.startswith("--")]
    hints = []
    for word in unknown:
        if not word.startswith("-"):
            continue
        close = difflib.get_close_matches(word.partition("=")[0], flags, n=2, cutoff=0.6)
        if close:
            hints.append(f"{word}: did you mean {' or '.join(close)}?")
    message = f"unrecognized arguments: {' '.join(unknown)}"
    sub.error(f"{message} ({'; '.join(hints)})" if hints else f"{message} (see nightshift {args.command} --help)")


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[command]


if __name__ == "__main__":
    sys.exit(main())

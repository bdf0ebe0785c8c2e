"""`nightshift fork RUN --step N --set key=value`: a new run from a checkpoint, lineage recorded."""

from __future__ import annotations

import argparse

from nightshift.orchestrator.commands.common import (
    add_naming_args,
    add_store_arg,
    add_tracking_arg,
    emit_json,
    naming_of,
    open_store,
    run_exit_code,
    tracking_uri_of,
)
from nightshift.orchestrator.runs.config import parse_sets


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fork", help="start a new run from a checkpoint of another, with a config change")
    p.add_argument("run", metavar="RUN", help="parent run id")
    p.add_argument("--step", type=int, default=None, help="parent checkpoint step (default: latest)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="the config change of the fork: a model or trainer field (repeatable), e.g. --set lr=1e-4")
    p.add_argument("--steps", type=int, default=None, help="total steps of the fork")
    p.add_argument("--no-train", action="store_true", help="create the fork but do not train it yet")
    add_store_arg(p)
    add_tracking_arg(p)
    add_naming_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nightshift.orchestrator.backends import launch
    from nightshift.orchestrator.commands.train import print_result
    from nightshift.orchestrator.runs.fork import fork_run

    store = open_store(args)
    naming = naming_of(args)  # a bad --tag fails before the fork is made
    child, lineage = fork_run(store, args.run, args.step, parse_sets(args.set), steps=args.steps)
    if args.no_train:
        out = {"run_id": child.run_id, **lineage}
        emit_json(out) if args.json else print(f"forked {args.run}@{lineage['parent_step']} -> {child.run_id}")
        return 0
    result = launch(child, store, tracking_uri=tracking_uri_of(args), progress=not args.no_progress, naming=naming)
    result = {**result, "lineage": lineage}
    emit_json(result) if args.json else print_result(result)
    return run_exit_code(result)

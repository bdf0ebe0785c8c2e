"""`nightshift sweep`: train every (dataset size x model variant x seed) cell; re-running skips finished cells."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from nightshift.orchestrator.commands import config_file
from nightshift.orchestrator.commands.common import (
    add_naming_args,
    add_store_arg,
    add_tracking_arg,
    emit_json,
    naming_of,
    open_store,
    tracking_uri_of,
)
from nightshift.orchestrator.errors import UserError
from nightshift.pipelines.sizes import parse_size
from nightshift.pipelines.source_spec import SOURCES_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="train every (size x model x seed) cell on one source; MLflow parent + nested runs",
        description="Prepare each size once (all sizes share the validation bytes), then train every cell. "
                    "Re-running the same sweep skips finished cells and resumes unfinished ones; a report "
                    "(HTML, JSON, PNG) is written at the end.")
    add_sweep_args(p)
    p.add_argument("--backend", choices=("local", "ray", "modal"), default="local",
                   help="local: one cell after another; ray: cells as parallel Ray tasks; modal: starmap")
    p.add_argument("--cpus-per-cell", type=float, default=1.0, help="ray: CPUs reserved per cell (default 1)")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="where to write the report (default: <store>/sweeps/<sweep id>/report for a local store)")
    p.add_argument("--no-report", action="store_true", help="train only; `nightshift report` can run later")
    add_store_arg(p)
    add_tracking_arg(p)
    add_naming_args(p, run_name=SWEEP_RUN_NAME_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    install_config_file(p, run)


SWEEP_RUN_NAME_HELP = "the sweep's parent run's name in MLflow (default: sweep SIZES x N variants)"


def install_config_file(p: argparse.ArgumentParser, run: config_file.Run) -> None:
    """`--config FILE` for a sweep-shaped command; a sweep's own config.json (its spec) is one too."""
    config_file.install(p, run, exclusive=[("steps", "tokens", "epochs")], lists=("sizes", "models", "seeds"),
                        aliases={"sets": "set"})


def add_sweep_args(p: argparse.ArgumentParser, defaults: dict[str, Any] | None = None) -> None:
    """The flags that make up a sweep's spec (`nightshift demo` passes its own defaults)."""
    d = defaults or {}
    p.add_argument("--source", default=d.get("source"), required="source" not in d,
                   help=SOURCES_HELP)
    p.add_argument("--sizes", default=d.get("sizes"), required="sizes" not in d,
                   help="training sizes, e.g. 1MB,4MB,16MB")
    p.add_argument("--models", default=d.get("models"), required="models" not in d,
                   help="comma-separated FAMILY:FLAVOR list, e.g. transformer:tiny,attractor:a1")
    p.add_argument("--seeds", default="1",
                   help="seeds per (size, model): N means 0..N-1 (default 1); a comma list names them, e.g. 0,1,2")
    minutes, epochs = d.get("budget_minutes", 0.0), d.get("epochs")  # `nightshift demo`: 1 epoch, capped in time
    p.set_defaults(default_budget_minutes=minutes, default_epochs=epochs)
    shown = ", ".join(filter(None, (f"{epochs:g} epoch" if epochs else "",
                                   f"{'at most ' if epochs else ''}{minutes:g} minutes of compute" if minutes else "")))
    shown = shown or "each recipe's steps"
    bound = p.add_argument_group(f"equal budget per cell (one of; default: {shown})")
    bound.add_argument("--steps", type=int, default=None, help="optimizer steps per cell")
    bound.add_argument("--tokens", default=None, help="training tokens per cell, e.g. 2M (steps derived per variant)")
    bound.add_argument("--epochs", type=float, default=None,
                       help="passes over each size's training tokens (the same data budget per byte of a size)")
    bound.add_argument("--budget-minutes", type=float, default=None,
                       help="minutes of compute per cell: all work but evaluation and checkpoints (sleep and "
                            "data loading count); with --steps/--tokens/--epochs a cap on top")
    p.add_argument("--evals", type=int, default=d.get("evals", 4),
                   help=f"validation evals per cell for the curves (default {d.get('evals', 4)})")
    p.add_argument("--valid-bytes", default=d.get("valid_bytes", "1MB"),
                   help=f"validation text, the same for every size (default {d.get('valid_bytes', '1MB')})")
    p.add_argument("--tokenizer", default="gpt2", help="gpt2 | r50k_base | cl100k_base | o200k_base | bytes")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model or trainer field in every cell (repeatable); FAMILY.KEY=VALUE only in "
                        "that family's cells, e.g. --set attractor.eval_every=50")
    p.add_argument("--actors", type=int, default=0, help="Ray actors tokenizing during prepare (0: in-process)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads per local cell (default: torch's own; 1 is fastest on a busy machine)")


def spec_from_args(args: argparse.Namespace, extra_sets: tuple[str, ...] = ()):  # noqa: ANN201 - SweepConfig
    """`extra_sets` come before the user's --set (which win on the same key)."""
    from nightshift.orchestrator.sweeps.spec import SweepConfig

    sizes = tuple(parse_size(s.strip(), what="--sizes") for s in args.sizes.split(",") if s.strip())
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    seeds = parse_seeds(args.seeds)
    tokens = parse_size(args.tokens, what="--tokens") if args.tokens else None
    epochs = args.epochs
    if epochs is None and args.steps is None and tokens is None:
        epochs = args.default_epochs
    budget = args.default_budget_minutes if args.budget_minutes is None else args.budget_minutes
    spec = SweepConfig(source=args.source, sizes=sizes, models=models, seeds=seeds,
                       steps=args.steps, tokens=tokens, epochs=epochs, budget_minutes=budget, evals=args.evals,
                       valid_bytes=parse_size(args.valid_bytes, what="--valid-bytes"), tokenizer=args.tokenizer,
                       sets=(*extra_sets, *args.set))
    spec.validate()
    return spec


def parse_seeds(text: str) -> tuple[int, ...]:
    """`3` -> (0, 1, 2); `0,1,2` or `5,` -> those seeds."""
    text = str(text).strip()
    try:
        if "," not in text:
            count = int(text)
            if count < 1:
                raise ValueError
            return tuple(range(count))
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UserError(f"--seeds {text!r}: a count N >= 1 (seeds 0..N-1) or a comma list of seeds >= 0, "
                        "e.g. 3 or 0,1,2") from None


def default_report_dir(store, sweep_id: str) -> str | None:  # noqa: ANN001 - Store
    return store.path("sweeps", sweep_id, "report") if store.is_local else None


def progress_printer(enabled: bool):  # noqa: ANN201 - callback
    def notify(event: str, cell: dict[str, Any]) -> None:
        if not enabled:
            return
        name = f"{cell['model']} @ {cell['size']} seed {cell['seed']}"
        if event == "start":
            print(f"[{cell['index']}/{cell['total']}] {name}  ({cell['run_id']})", file=sys.stderr, flush=True)
        elif event == "skip":
            print(f"skip (finished): {name}  bpb {cell['val_bpb']:.4f}", file=sys.stderr, flush=True)
        elif event == "failed":
            print(f"FAILED: {name}: {cell.get('error')}", file=sys.stderr, flush=True)
        elif event == "finished" and cell.get("val_bpb") is not None:
            print(f"  done: {name}  bpb {cell['val_bpb']:.4f}  {cell['tokens_per_s']:,.0f} tok/s",
                  file=sys.stderr, flush=True)
    return notify


def print_table(cells: list[dict[str, Any]], references: dict[str, dict[str, float]] | None = None) -> None:
    """One row per cell (compute: device-seconds of all work but evaluation), ablations and references beside."""
    from nightshift.orchestrator.sweeps.report.undertrained import undertrained

    print(f"\n{'size':>6}  {'model':<24} {'seed':>4} {'val bits/byte':>13} {'compute s':>9} {'steps':>7} "
          f"{'stop':<8} run  [ablations: bits/byte with the part off]")
    for c in sorted(cells, key=lambda c: (c["size_bytes"], c["model"], c["seed"])):
        bpb = f"{c['val_bpb']:.4f}" if c.get("val_bpb") is not None else c.get("state", "?")
        secs = f"{c['compute_seconds']:,.1f}" if c.get("compute_seconds") is not None else "-"
        ablations = ", ".join(f"{p} {v:.4f}" for p, v in (c.get("ablations") or {}).items()) or "-"
        mark = undertrained(c)
        print(f"{c['size']:>6}  {c['model']:<24} {c['seed']:>4} {bpb:>13} {secs:>9} {c.get('step') or 0:>7} "
              f"{c.get('stop_reason') or '':<8} {c['run_id']}{'  [' + ablations + ']' if ablations != '-' else ''}"
              f"{'  (' + mark + ')' if mark else ''}")
    for size, refs in (references or {}).items():
        if refs:
            figures = "  ".join(f"{k} {v:.4f}" for k, v in refs.items())
            print(f"{size:>6}  references (adaptive compressors, same bytes): {figures}")


def run_and_print(args: argparse.Namespace, spec: Any, *, backend: str = "local", cpus_per_cell: float = 1.0,
                  threads: int = 0, report: str | None = None, no_report: bool = False) -> int:
    from nightshift.orchestrator.sweeps.run import run_sweep

    store = open_store(args)
    report_dir = None if no_report else (report or default_report_dir(store, spec.sweep_id))
    if report_dir:
        report_dir = os.path.abspath(report_dir)
    outcome = run_sweep(spec, store, backend=backend, tracking_uri=tracking_uri_of(args),
                        progress=not args.no_progress, actors=args.actors, cpus_per_cell=cpus_per_cell,
                        threads=threads, report_dir=report_dir, naming=naming_of(args),
                        on_cell=progress_printer(not args.json))
    code = 130 if outcome.interrupted else 1 if outcome.failed else 0
    if args.json:
        emit_json({"sweep_id": outcome.sweep_id, "parent_run_id": outcome.parent_run_id, "skipped": outcome.skipped,
                   "trained": outcome.trained, "failed": outcome.failed, "interrupted": outcome.interrupted,
                   "report": os.path.join(outcome.report_dir, "report.html") if outcome.report_dir else None,
                   "cells": outcome.cells, "references": outcome.references})
        return code
    print_table(outcome.cells, outcome.references)
    store_flag = f" --store {args.store}" if args.store else ""
    resume = " - interrupted: run the same command again to resume" if outcome.interrupted else ""
    print(f"\nsweep {outcome.sweep_id}: {outcome.trained} trained, {outcome.skipped} already finished, "
          f"{outcome.failed} failed{resume}")
    if outcome.report_dir:
        print(f"report:  {os.path.join(outcome.report_dir, 'report.html')}")
    else:
        print(f"report:  nightshift report --sweep {outcome.sweep_id}{store_flag} --out report/")
    print(f"compare in the MLflow UI:  nightshift ui{store_flag}")
    return code


def run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    return run_and_print(args, spec, backend=args.backend, cpus_per_cell=args.cpus_per_cell, threads=args.threads,
                         report=args.report, no_report=args.no_report)

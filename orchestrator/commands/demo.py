"""`nightshift demo`: the README's main command - a small sweep of every family on a real dataset, then a report.

Two sizes x one quick flavor of every model family that imports; each cell
makes one pass over its dataset's training tokens, capped at half a minute of
compute (all work but evaluation: sleep and consolidation count). A gradient
family that cannot finish its pass in that time plans its length from its
first steps and fits its LR schedule to it, so it completes a whole schedule.
Ends with the table (compute, ablations, the xz / zstd / PPMd references on
the same bytes), the report's path and the `nightshift ui` command. It is
`nightshift sweep` with laptop defaults, so re-running it is a no-op and an
interrupted demo resumes.
"""

from __future__ import annotations

import argparse

from nightshift.orchestrator.commands.sweep import (
    SWEEP_RUN_NAME_HELP,
    add_sweep_args,
    install_config_file,
    run_and_print,
    spec_from_args,
)

# One quick flavor per family (the first that exists); families that do not import are left out.
DEMO_FLAVORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("transformer", ("tiny",)),
    ("attractor", ("a1",)),
    ("holographic", ("short", "tiny")),
    ("macro_unit", ("small",)),
)
# Per family: gradient families reach only the first steps of their pass within the cap, so they are evaluated
# often enough for a curve; the sleeping families sleep a few times within one pass (their recipes sleep rarely).
DEMO_SETS: dict[str, tuple[str, ...]] = {
    "transformer": ("transformer.eval_every=8",),
    "attractor": ("attractor.eval_every=40", "attractor.sleep_every=512"),
    "holographic": ("holographic.sleep_every=480",),
    "macro_unit": ("macro_unit.sleep_every=32",),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="a small sweep: two sizes x every model family, a report, the UI (minutes)",
                       description="Prepare two sizes of a real dataset (the same validation bytes for both), train "
                                   "one quick flavor of every model family for the same compute, and write a "
                                   "report. Re-running is a no-op; an interrupted demo resumes.")
    add_sweep_args(p, {"source": "pg19", "sizes": "1MB,4MB", "models": "auto", "epochs": 1.0,
                       "budget_minutes": 0.5, "valid_bytes": "64KB", "evals": 3})
    add_store_and_output_args(p)
    install_config_file(p, run)


def add_store_and_output_args(p: argparse.ArgumentParser) -> None:
    from nightshift.orchestrator.commands.common import add_naming_args, add_store_arg, add_tracking_arg

    p.add_argument("--report", default=None, metavar="DIR",
                   help="where to write the report (default: <store>/sweeps/<sweep id>/report)")
    add_store_arg(p)
    add_tracking_arg(p)
    add_naming_args(p, run_name=SWEEP_RUN_NAME_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bars (periodic log lines instead)")
    p.add_argument("--json", action="store_true", help="print the sweep's result as JSON")


def demo_models() -> str:
    """`family:flavor` for every family that imports, in the registry's order."""
    from nightshift.models.registry import available_families

    found = available_families()
    picks = []
    for family, flavors in DEMO_FLAVORS:
        module = found.get(family)
        flavor = next((f for f in flavors if module is not None and f in module.FLAVORS), None)
        if flavor is None and module is not None:
            flavor = module.DEFAULT_FLAVOR
        if flavor is not None:
            picks.append(f"{family}:{flavor}")
    return ",".join(picks)


def run(args: argparse.Namespace) -> int:
    if args.models == "auto":
        args.models = demo_models()
    families = {m.strip().partition(":")[0] for m in args.models.split(",")}
    extra = tuple(s for family, sets in DEMO_SETS.items() if family in families for s in sets)
    spec = spec_from_args(args, extra_sets=extra)
    return run_and_print(args, spec, threads=args.threads, report=args.report)

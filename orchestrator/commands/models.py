"""`nightshift models`: the built-in families and their flavors."""

from __future__ import annotations

import argparse

from nightshift.models.registry import available_families
from nightshift.orchestrator.commands.common import emit_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list model families and flavors")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = []
    for name, module in available_families().items():
        for flavor, recipe in module.FLAVORS.items():
            rows.append({"family": name, "flavor": flavor, "default": flavor == module.DEFAULT_FLAVOR,
                         "summary": recipe.summary, "family_summary": module.SUMMARY})
    if args.json:
        emit_json(rows)
        return 0
    current = None
    for row in rows:
        if row["family"] != current:
            current = row["family"]
            print(f"{current}: {row['family_summary']}")
        mark = " (default)" if row["default"] else ""
        print(f"  {row['family']}:{row['flavor']:<12}{mark:<10} {row['summary']}")
    return 0

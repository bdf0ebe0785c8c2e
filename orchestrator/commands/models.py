"""`nightshift models [FAMILY[:FLAVOR]] [--fields]`: the families and flavors, or every field `--set` reaches."""

from __future__ import annotations

import argparse
import json

from nightshift.models.registry import available_families, family_module
from nightshift.orchestrator.commands.common import emit_json
from nightshift.orchestrator.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list model families and flavors, or a flavor's settable fields")
    p.add_argument("model", nargs="?", default=None, metavar="FAMILY[:FLAVOR]",
                   help="only this family (with --fields: this flavor, default the family's default flavor)")
    p.add_argument("--fields", action="store_true",
                   help="every model and trainer field --set (or a config file's [set]) reaches, with the "
                        "flavor's default, type and doc")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.fields:
        return show_fields(args.model, as_json=args.json)
    families = available_families()
    if args.model:
        family = args.model.partition(":")[0]
        families = {family: family_module(family)}  # an unknown family: one line naming the known ones
    rows = []
    for name, module in families.items():
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


def show_fields(model: str | None, *, as_json: bool) -> int:
    from nightshift.orchestrator.runs.fields import settable_fields

    if not model:
        raise UserError("--fields lists one flavor's fields: give it, e.g. nightshift models transformer:tiny --fields")
    fields = settable_fields(model)
    if as_json:
        emit_json([f.to_dict() for f in fields])
        return 0
    family, _, flavor = model.partition(":")
    flavor = flavor or family_module(family).DEFAULT_FLAVOR
    shown = [(f.key, f.type, _value(f.default), f.doc) for f in fields]
    widths = [max(len(row[i]) for row in shown) for i in range(3)]
    print(f"{family}:{flavor}: --set KEY=VALUE (or a [set] table in --config FILE); defaults are this flavor's")
    for scope, title in (("model", "model config"), ("train", "trainer")):
        print(f"\n{title}:")
        for f, (key, kind, default, doc) in zip(fields, shown):
            if f.scope == scope:
                print(f"  {key:<{widths[0]}}  {kind:<{widths[1]}}  {default:<{widths[2]}}  {doc}")
    return 0


def _value(value: object) -> str:
    """A default as it is typed after `--set KEY=`: lists comma-joined, booleans lower-case."""
    if isinstance(value, list):
        return ",".join(map(_value, value)) or '""'
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return str(value)

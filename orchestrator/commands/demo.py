"""`nightshift demo`: the README's main command - a real dataset, two sizes, a table, the UI."""

from __future__ import annotations

import argparse

from orchestrator.commands.common import add_store_arg, add_tracking_arg, emit_json, open_store
from orchestrator.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="prepare a small real dataset at two sizes, train, compare (minutes)")
    p.add_argument("--source", default="pg19", help="pg19 (Hugging Face hub) or local:PATH for offline use")
    p.add_argument("--sizes", default="1MB,4MB", help="comma-separated training sizes")
    p.add_argument("--models", default="transformer:tiny", help="comma-separated FAMILY:FLAVOR list")
    p.add_argument("--tokenizer", default="gpt2")
    p.add_argument("--steps", type=int, default=300, help="steps per run")
    p.add_argument("--valid-bytes", default="256KB", help="validation text (the same bytes for every size)")
    add_store_arg(p)
    add_tracking_arg(p)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orchestrator.config import build_run_config
    from orchestrator.launch import launch
    from pipelines.prepare import PrepareConfig, prepare
    from pipelines.sizes import parse_size

    store = open_store(args)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not sizes or not models:
        raise UserError("--sizes and --models need at least one entry each, e.g. --sizes 1MB,4MB")
    valid = parse_size(args.valid_bytes, what="--valid-bytes")
    rows = []
    for size in sizes:
        pcfg = PrepareConfig(source=args.source, max_bytes=parse_size(size, what="--sizes"),
                             valid_bytes=valid, tokenizer=args.tokenizer)
        manifest = prepare(pcfg, store, actors=1, progress=not args.no_progress)
        for model in models:
            config = build_run_config(manifest.dataset_id, model, {"eval_every": "0"}, steps=args.steps)
            result = launch(config, store, tracking_uri=args.tracking_uri, progress=not args.no_progress)
            rows.append({"size": size, "model": model, **result})
    if args.json:
        emit_json(rows)
        return 0
    print(f"\n{'size':>6}  {'model':<20} {'val bits/byte':>13} {'tokens/s':>10}  run")
    for row in rows:
        print(f"{row['size']:>6}  {row['model']:<20} {row['val_bpb']:>13.4f} {row['tokens_per_s']:>10,.0f}  "
              f"{row['run_id']}")
    print(f"\nartifacts: {store.url}/runs/")
    print(f"compare in the MLflow UI:  nightshift ui{' --store ' + args.store if args.store else ''}")
    return 0

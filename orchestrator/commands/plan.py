"""`nightshift plan`: what a run will need on a device (memory, disk, hours), before anything starts."""

from __future__ import annotations

import argparse
import math

from nightshift.orchestrator.commands.common import add_store_arg, emit_json, open_store
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import build_run_config, parse_sets


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="estimate memory, disk and hours of a run on a device; refuse what cannot fit")
    p.add_argument("--model", required=True, metavar="FAMILY[:FLAVOR]", help="e.g. holographic:giant")
    p.add_argument("--device", default="CPU", help="H100, H200, A100, A100-80GB or CPU, optionally :COUNT")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model or trainer field")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the recipe's)")
    p.add_argument("--samples", type=int, default=None, help="training sequences instead of --steps")
    g = p.add_argument_group("data (a prepared dataset, or the size of one)")
    g.add_argument("--dataset", default=None, metavar="ID", help="read token counts from its manifest")
    g.add_argument("--max-bytes", default="1GB", help="training text, when no --dataset (default 1GB)")
    g.add_argument("--valid-bytes", default="10MB", help="validation text, when no --dataset (default 10MB)")
    g.add_argument("--tokenizer", default="gpt2", help="gpt2 | r50k_base | cl100k_base | bytes")
    p.add_argument("--host-memory", default=None, metavar="SIZE", help="host memory the run may use, e.g. 200GB")
    add_store_arg(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nightshift.orchestrator.planning.preflight import data_from_bytes, data_from_manifest, plan_run
    from nightshift.pipelines.sizes import parse_size

    if args.steps is not None and args.samples is not None:
        raise UserError("give --steps or --samples, not both")
    if args.dataset:
        from nightshift.pipelines.reader import open_dataset

        data = data_from_manifest(open_dataset(open_store(args), args.dataset).manifest)
    else:
        data = data_from_bytes(args.tokenizer, parse_size(args.max_bytes, what="--max-bytes"),
                               parse_size(args.valid_bytes, what="--valid-bytes"))
    config = build_run_config(args.dataset or "plan-000000000000", args.model, parse_sets(args.set),
                              steps=args.steps)
    if args.samples is not None:
        if args.samples < 1:
            raise UserError(f"--samples {args.samples}: must be >= 1")
        config = build_run_config(config.dataset_id, args.model, parse_sets(args.set),
                                  steps=math.ceil(args.samples / config.train.batch_size))
    host = parse_size(args.host_memory, what="--host-memory") if args.host_memory else None
    plan = plan_run(config, args.device, data, host_memory=host)
    if args.json:
        emit_json(plan.as_dict())
    else:
        print(plan.render())
    plan.check()
    return 0

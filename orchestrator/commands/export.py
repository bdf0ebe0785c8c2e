"""`nightshift export RUN [--step N] --format safetensors|pt --out DIR`: a checkpoint as a portable folder."""

from __future__ import annotations

import argparse

from nightshift.orchestrator.commands.common import add_store_arg, emit_json, open_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a run's checkpoint as safetensors (or pt) + config + tokenizer")
    p.add_argument("run", metavar="RUN", help="run id (see the train output or the MLflow UI)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    p.add_argument("--format", default="safetensors", metavar="FORMAT",
                   help="weights file: safetensors (default) or pt (a plain torch.save of the state dict)")
    p.add_argument("--out", required=True, metavar="DIR", help="new (or empty) folder to write; never overwritten")
    add_store_arg(p)
    p.add_argument("--json", action="store_true", help="print the files written and their sizes as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nightshift.orchestrator.runs.export import export_run

    result = export_run(open_store(args), args.run, out=args.out, fmt=args.format, step=args.step)
    if args.json:
        emit_json({"run_id": result.run_id, "step": result.step, "format": result.format, "out": result.out,
                   "files": dict(result.files), "bytes": result.total_bytes})
    else:
        print(result.summary())
    return 0

"""`nightshift eval RUN`: bits per byte of a run's checkpoint on its dataset's whole validation split."""

from __future__ import annotations

import argparse
import sys

from orchestrator.commands.common import add_store_arg, emit_json, open_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a run's checkpoint on the validation split (bits per byte)")
    p.add_argument("run", metavar="RUN", help="run id (see the train output or the MLflow UI)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    p.add_argument("--max-bytes", type=int, default=0, help="score only the first N validation bytes (0: all)")
    p.add_argument("--batch-size", type=int, default=16)
    add_store_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orchestrator.evaluate import bits_per_byte
    from orchestrator.loading import load_run

    loaded = load_run(open_store(args), args.run, step=args.step)
    print(f"nightshift: eval {args.run}: {loaded.describe()}", file=sys.stderr)
    res = bits_per_byte(loaded.model, loaded.dataset.validation_docs(), batch_size=args.batch_size,
                        max_bytes=args.max_bytes)
    out = {"run_id": args.run, "step": loaded.step, "val_bpb": res.bits_per_byte, "val_bytes": res.n_bytes,
           "val_tokens": res.n_tokens, "val_docs": res.n_docs, "seconds": res.seconds,
           "checkpoint": loaded.checkpoint, "skipped_checkpoints": list(loaded.skipped)}
    if args.json:
        emit_json(out)
    else:
        print(f"{args.run} @ step {loaded.step}: {res.bits_per_byte:.4f} bits/byte over {res.n_bytes:,} bytes "
              f"({res.n_docs} docs, {res.seconds:.1f} s)")
    return 0

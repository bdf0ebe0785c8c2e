"""`nightshift sample RUN --prompt TEXT`: generate from a run's checkpoint."""

from __future__ import annotations

import argparse
import sys

from nightshift.orchestrator.commands.common import add_store_arg, emit_json, open_store
from nightshift.orchestrator.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="generate text from a run's checkpoint")
    p.add_argument("run", metavar="RUN", help="run id (see the train output or the MLflow UI)")
    p.add_argument("--prompt", default="It was a dark and stormy night",
                   help="text to continue (printed once, followed by the continuation)")
    p.add_argument("--tokens", type=int, default=100, help="tokens to generate")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="softmax temperature, > 0 (lower: more predictable text)")
    p.add_argument("--top-k", type=int, default=40, help="sample among the K most likely tokens (0: all)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed: the same seed gives the same text")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    add_store_arg(p)
    p.add_argument("--json", action="store_true", help="print prompt, text and checkpoint as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nightshift.orchestrator.runs.loading import load_run
    from nightshift.orchestrator.training.sampling import generate_text

    if args.tokens < 1:
        raise UserError(f"--tokens {args.tokens}: must be >= 1")
    if args.temperature <= 0:
        raise UserError(f"--temperature {args.temperature}: must be > 0")
    loaded = load_run(open_store(args), args.run, step=args.step)
    print(f"nightshift: sample {args.run}: {loaded.describe()}", file=sys.stderr)
    if args.top_k < 0:
        raise UserError(f"--top-k {args.top_k}: must be >= 0 (0: all tokens)")
    text = generate_text(loaded.model, loaded.tokenizer, args.prompt, args.tokens, seed=args.seed,
                         temperature=args.temperature, top_k=args.top_k or None)
    if args.json:  # text: the prompt and its continuation, as printed
        emit_json({"run_id": args.run, "step": loaded.step, "checkpoint": loaded.checkpoint,
                   "skipped_checkpoints": list(loaded.skipped), "prompt": args.prompt, "text": text,
                   "continuation": text.removeprefix(args.prompt)})
    else:
        print(text)
    return 0

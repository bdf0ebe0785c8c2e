"""`nightshift eval RUN`: bits per byte of a run's checkpoint on its dataset's whole validation split.

Beside the figure: the reference compressors on the same bytes (cached beside
the dataset), with `--ablate` the figure with each of the family's mechanisms
off, and with `--online` the prequential figure of a memory family (it learns
from the validation text while scoring it, as the compressors do). The scored
checkpoint is logged as an MLflow model of the run's MLflow run (`--register
NAME` registers it; orchestrator/serving/eval_model.py).
"""

from __future__ import annotations

import argparse
import sys

from nightshift.orchestrator.commands.common import add_store_arg, emit_json, open_store, tracking_uri_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a run's checkpoint on the validation split (bits per byte)")
    p.add_argument("run", metavar="RUN", help="run id (see the train output or the MLflow UI)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    p.add_argument("--max-bytes", type=int, default=0,
                   help="score only the first N validation bytes (0: all): documents in split order, the last "
                        "one cut at a token boundary")
    p.add_argument("--batch-size", type=int, default=16, help="windows scored per forward (memory, not the figure)")
    p.add_argument("--ablate", nargs="?", const="all", default=None, metavar="PARTS",
                   help="also score with each ablatable part off (all, or a comma list, e.g. memory,prototypes)")
    p.add_argument("--online", action="store_true",
                   help="memory families: also the prequential figure (observe the validation text while scoring)")
    p.add_argument("--no-references", action="store_true",
                   help="skip the xz / zstd / PPMd figures (computed once per dataset, then cached)")
    add_store_arg(p)
    p.add_argument("--tracking-uri", default=None, metavar="URI",
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite inside the local store)")
    p.add_argument("--register", default=None, metavar="NAME",
                   help="register the evaluated checkpoint's MLflow model as a new version of NAME")
    p.add_argument("--no-log-model", action="store_true",
                   help="do not log the evaluated checkpoint as an MLflow model of the run")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nightshift.orchestrator.errors import UserError
    from nightshift.orchestrator.evaluation.ablation import parts_of, score_ablations
    from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte, online_bits_per_byte
    from nightshift.orchestrator.evaluation.references import references_for
    from nightshift.orchestrator.runs.loading import load_run
    from nightshift.orchestrator.serving.eval_model import eval_model_target

    store = open_store(args)
    if args.register is not None and args.no_log_model:
        raise UserError(f"--register {args.register!r} registers the model eval logs; drop --no-log-model")
    loaded = load_run(store, args.run, step=args.step)
    target = None if args.no_log_model else eval_model_target(tracking_uri_of(args), store, loaded.run.config.run_id,
                                                                  args.register)
    print(f"nightshift: eval {args.run}: {loaded.describe()}", file=sys.stderr)
    model, dataset = loaded.model, loaded.dataset
    if args.online and model.trains_by_gradient:
        raise UserError(f"--online: {model.family} trains by gradient; online scoring observes the validation "
                        "text, which only memory families (holographic, macro_unit) do")
    requested = None if args.ablate in (None, "all") else [p.strip() for p in args.ablate.split(",") if p.strip()]
    parts = parts_of(model, requested) if args.ablate else ()
    logged = prepare_model(target, loaded)  # the state as loaded, before --online changes a memory

    def score():  # noqa: ANN202 - EvalResult
        return bits_per_byte(model, dataset.validation_docs(), batch_size=args.batch_size, max_bytes=args.max_bytes)

    res = score()
    out = {"run_id": args.run, "step": loaded.step, "val_bpb": res.bits_per_byte, "val_bytes": res.n_bytes,
           "val_tokens": res.n_tokens, "val_docs": res.n_docs, "seconds": res.seconds,
           "checkpoint": loaded.checkpoint, "skipped_checkpoints": list(loaded.skipped)}
    if args.ablate:
        out["ablations"] = {p: r.bits_per_byte for p, r in score_ablations(model, score, parts).items()}
    if args.online:  # last: it changes the loaded model's memory
        online = online_bits_per_byte(model, dataset.validation_docs(), max_bytes=args.max_bytes)
        out["online_bpb"] = online.bits_per_byte
    refs = None if args.no_references or args.max_bytes else references_for(store, loaded.run.config.dataset_id)
    if refs is not None:
        out["references"] = refs["bpb"]
        out["references_note"] = refs["note"]
    failed = send_model(logged, out, {"val_bpb": res.bits_per_byte, "val_bytes": res.n_bytes})
    if args.json:
        emit_json(out)
        return done(failed)
    print(f"{args.run} @ step {loaded.step}: {res.bits_per_byte:.4f} bits/byte over {res.n_bytes:,} bytes "
          f"({res.n_docs} docs, {res.seconds:.1f} s)")
    for part, bpb in out.get("ablations", {}).items():
        print(f"  without {part:<12} {bpb:.4f}  ({bpb - res.bits_per_byte:+.4f})")
    if args.ablate and not parts:
        print(f"  ({model.family} declares no ablatable parts)")
    if "online_bpb" in out:
        print(f"  online (prequential) {out['online_bpb']:.4f}")
    if refs is not None:
        figures = ", ".join(f"{k} {v:.4f}" for k, v in refs["bpb"].items())
        print(f"  references (adaptive, given the last {refs['train_bytes_used']:,} training bytes): {figures}")
    if "mlflow_model" in out:
        mlflow_model = out["mlflow_model"]
        print(f"  MLflow model {mlflow_model['uri']}  ({mlflow_model['model_id']})")
        if "registered" in mlflow_model:
            print(f"  registered {mlflow_model['registered']['uri']}")
    return done(failed)


def done(failed: Exception | None) -> int:
    """0, or the --register failure raised once the figures are out (they cost minutes; the user keeps them)."""
    if failed is not None:
        raise failed
    return 0


def prepare_model(target, loaded):  # noqa: ANN001, ANN201 - EvalModelTarget | None, LoadedRun -> EvalModel | None
    """The evaluated checkpoint packaged for MLflow, or None (no target, or packaging failed without --register)."""
    if target is None:
        return None
    from nightshift.orchestrator.errors import UserError
    from nightshift.orchestrator.serving.eval_model import EvalModel

    logged = EvalModel(target, loaded)
    try:
        logged.prepare()
    except Exception as exc:
        logged.close()
        if target.register is not None:
            raise UserError(f"--register {target.register!r}: the checkpoint could not be packaged as an MLflow "
                            f"model ({type(exc).__name__}: {exc}); nothing registered") from exc
        print(f"nightshift: warning: checkpoint not logged to MLflow ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        return None
    return logged


def send_model(logged, out: dict, figures: dict):  # noqa: ANN001, ANN201 - EvalModel | None -> UserError | None
    """Upload (and register) the packaged model; its URIs go into `out`. A failure is a warning, or, when
    --register was asked for, the error to raise once the figures are printed."""
    if logged is None:
        return None
    from nightshift.orchestrator.errors import UserError

    try:
        out["mlflow_model"] = logged.send(figures)
    except Exception as exc:  # noqa: BLE001 - the figures are printed already; the failure is one line
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        if logged.target.register is not None:
            return UserError(f"--register {logged.target.register!r} failed ({reason}); nothing registered")
        print(f"nightshift: warning: checkpoint not logged to MLflow ({reason})", file=sys.stderr)
    return None



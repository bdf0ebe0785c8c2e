"""`nightshift train`: one run of one model on one dataset (the same loop on every backend)."""

from __future__ import annotations

import argparse
import logging

from nightshift.orchestrator.backends.base import BACKENDS
from nightshift.orchestrator.commands import config_file
from nightshift.orchestrator.commands.common import (
    add_naming_args,
    add_store_arg,
    add_tracking_arg,
    emit_json,
    naming_of,
    open_store,
    run_exit_code,
    tracking_uri_of,
)
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import RunConfig, build_run_config, parse_sets
from nightshift.orchestrator.runs.folders import find_run
from nightshift.pipelines.ids import validate_id
from nightshift.pipelines.source_spec import SOURCES_HELP

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a prepared dataset (or prepare it first)")
    add_dataset_args(p)
    p.add_argument("--model", default=None, metavar="FAMILY[:FLAVOR]",
                   help="e.g. transformer:tiny, attractor:a1, holographic, macro_unit (see `nightshift models`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model or trainer field (repeatable), e.g. --set lr=3e-4 --set n_layer=2. "
                        "Units: log_every, eval_every, sample_every count steps and sleep_every sequences, or all "
                        "four count predicted positions (a window + its next token, the giant run's 'samples') "
                        "with --set cadence_unit=positions; keep_checkpoints=K (default 3) and keep_every=M steps "
                        "set checkpoint retention")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the recipe's)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of weights, data order and sampling (default: the recipe's; it is part of the run id)")
    p.add_argument("--resume", default=None, metavar="RUN", help="continue this run from its latest checkpoint")
    p.add_argument("--backend", choices=BACKENDS, default="local",
                   help="local (this machine), ray (Ray Train on $RAY_ADDRESS or a local Ray), modal (the deployed "
                        "app of jobs/giant.py; needs an s3:// store)")
    p.add_argument("--workers", type=int, default=1,
                   help="DDP workers (local processes, Ray Train workers, or GPUs of the Modal container)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="Ray: whole GPUs per worker (0: CPU workers)")
    add_store_arg(p)
    add_tracking_arg(p)
    add_naming_args(p)
    p.add_argument("--register", default=None, metavar="NAME",
                   help="register the run's logged MLflow model as a new version of NAME in the model registry")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    config_file.install(p, run, exclusive=[("dataset", "source")], translate=config_file.from_run_config)


def add_dataset_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dataset (an id, or a source to prepare first)")
    g.add_argument("--dataset", default=None, metavar="ID", help="a prepared dataset id")
    g.add_argument("--source", default=None, help=SOURCES_HELP)
    g.add_argument("--max-bytes", default="10MB", help="training text to prepare (default 10MB)")
    g.add_argument("--valid-bytes", default="1MB", help="validation text cap (default 1MB)")
    g.add_argument("--tokenizer", default="gpt2", help="gpt2 | r50k_base | cl100k_base | o200k_base | bytes")
    g.add_argument("--text-field", default=None, help="column holding the text (default: the source's, else text)")
    g.add_argument("--actors", type=int, default=1, help="Ray tokenizer actors for prepare")


def resolve_dataset(args: argparse.Namespace, store) -> str:  # noqa: ANN001 - Store
    """`--dataset ID`, or prepare `--source ...` (a no-op when already prepared) and return its id."""
    if args.dataset and args.source:
        raise UserError("give --dataset ID or --source SRC, not both")
    if args.dataset:
        return validate_id(args.dataset, "dataset id")
    if not args.source:
        raise UserError("no dataset: give --dataset ID (see `nightshift prepare`) or --source SRC")
    from nightshift.pipelines.prepare import PrepareConfig, prepare
    from nightshift.pipelines.sizes import parse_size

    extra = {"text_field": args.text_field} if args.text_field else {}
    config = PrepareConfig(source=args.source, max_bytes=parse_size(args.max_bytes, what="--max-bytes"),
                           valid_bytes=parse_size(args.valid_bytes, what="--valid-bytes"),
                           tokenizer=args.tokenizer, **extra)
    manifest = prepare(config, store, actors=args.actors, progress=not getattr(args, "no_progress", False))
    return manifest.dataset_id


def run_config_from_args(args: argparse.Namespace, store) -> RunConfig:  # noqa: ANN001
    sets = parse_sets(args.set)
    if args.steps is not None and args.steps <= 0:
        raise UserError(f"--steps {args.steps}: must be a positive number of steps")
    if args.resume:
        run = find_run(store, args.resume)
        if args.model or sets or args.steps is not None or args.dataset or args.source:
            wanted = build_run_config(args.dataset or run.config.dataset_id, args.model or run.config.model.name,
                                      sets or None, steps=args.steps, seed=args.seed)
            if wanted.run_id != run.config.run_id:
                raise UserError(f"--resume {args.resume}: the given flags change the config "
                                f"({describe_diff(run.config, wanted)}); use `nightshift fork` for a changed run")
        return run.config
    if not args.model:
        raise UserError("--model is required, e.g. --model transformer:tiny (see `nightshift models`)")
    dataset_id = resolve_dataset(args, store)
    return build_run_config(dataset_id, args.model, sets, steps=args.steps, seed=args.seed)


def describe_diff(a: RunConfig, b: RunConfig) -> str:
    from nightshift.orchestrator.runs.config import OPERATIONAL_FIELDS

    da, db = a.to_dict(), b.to_dict()
    diffs = []
    if da["dataset_id"] != db["dataset_id"]:
        diffs.append(f"dataset_id {da['dataset_id']} -> {db['dataset_id']}")
    if (da["model"]["family"], da["model"]["flavor"]) != (db["model"]["family"], db["model"]["flavor"]):
        diffs.append(f"model {a.model.name} -> {b.model.name}")
    for section in ("config",):
        for k in sorted(set(da["model"][section]) | set(db["model"][section])):
            if da["model"][section].get(k) != db["model"][section].get(k):
                diffs.append(f"{k} {da['model'][section].get(k)!r} -> {db['model'][section].get(k)!r}")
    for k in sorted(set(da["train"]) | set(db["train"])):
        if k not in OPERATIONAL_FIELDS and da["train"].get(k) != db["train"].get(k):
            diffs.append(f"{k} {da['train'].get(k)!r} -> {db['train'].get(k)!r}")
    return ", ".join(diffs) or "no visible difference"


def run(args: argparse.Namespace) -> int:
    from nightshift.orchestrator.backends import TrainOptions, get_backend

    store = open_store(args)
    backend = get_backend(args.backend)
    backend.check(store)  # a backend that cannot work here fails before any data is prepared
    registry = registry_uri(args, store)  # a bad --register fails here, before any training
    naming = naming_of(args)  # a bad --tag too
    config = run_config_from_args(args, store)
    result = backend.train(config, store, TrainOptions(workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                                                       tracking_uri=tracking_uri_of(args),
                                                       progress=not args.no_progress, naming=naming))
    if registry and result.get("stop_reason") in ("finished", "budget"):
        from nightshift.orchestrator.tracking.mlflow_outputs import register_tracked_run

        result["registered"] = register_tracked_run(registry, config.run_id, args.register)
    if args.json:
        emit_json(result)
    else:
        print_result(result)
    return run_exit_code(result)


def registry_uri(args: argparse.Namespace, store) -> str | None:  # noqa: ANN001 - Store
    """The tracking URI `--register` registers in (checked up front), or None without --register."""
    if args.register is None:
        return None
    from nightshift.orchestrator.tracking.mlflow_outputs import check_model_name
    from nightshift.orchestrator.tracking.uri import is_disabled, resolve_tracking_uri

    check_model_name(args.register)
    uri = resolve_tracking_uri(tracking_uri_of(args), store)
    if uri is None or is_disabled(uri):
        raise UserError(f"--register {args.register!r} needs MLflow tracking; tracking is off "
                        f"({uri or 'remote store without --tracking-uri'})")
    return uri


def print_result(result: dict) -> None:
    bpb = result.get("val_bpb")
    print(f"run        {result['run_id']}  ({result['family']}:{result['flavor']}, {result['stop_reason']} "
          f"at step {result['step']})")
    print(f"dataset    {result['dataset_id']}")
    if bpb is not None:
        print(f"val bpb    {bpb:.4f}  over {result['val_bytes']:,} validation bytes")
    print(f"speed      {result['tokens_per_s']:,.0f} tokens/s, {result['train_seconds']:.1f} s training")
    print(f"checkpoint {result.get('checkpoint')}")
    if result.get("stop_reason") == "interrupted":
        print(f"resume     nightshift train --resume {result['run_id']}  (same --store)")
    if result.get("registered"):
        reg = result["registered"]
        print(f"registered {reg['uri']}  (MLflow model {reg['model_id']})")

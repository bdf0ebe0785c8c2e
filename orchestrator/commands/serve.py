"""`nightshift serve RUN`: an OpenAI-compatible completions server for a trained model.

    nightshift serve transformer-debug-s0-5db136a178428520          # a run in the store
    nightshift serve runs:/<mlflow run id>/model --tracking-uri http://127.0.0.1:5000
    nightshift serve models:/pg19-transformer/1                     # a registered model version
    curl -s 127.0.0.1:8000/v1/completions -H 'content-type: application/json' \\
        -d '{"model": "RUN", "prompt": "Once upon a time", "max_tokens": 32}'

Binds 127.0.0.1 unless `--host` says otherwise; Ctrl-C (or SIGTERM) stops it.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from nightshift.orchestrator.commands.common import add_store_arg, add_tracking_arg, open_store
from nightshift.orchestrator.errors import UserError

MLFLOW_SCHEMES = ("runs:/", "models:/")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a trained model over an OpenAI-compatible HTTP API",
                       description="POST /v1/completions (stream via SSE), GET /v1/models, GET /health.")
    p.add_argument("run", metavar="RUN", help="a run id in the store, an MLflow model URI (runs:/ID/model, "
                                              "models:/NAME/VERSION) or a downloaded model folder")
    p.add_argument("--step", type=int, default=None, help="checkpoint step of a store run (default: latest)")
    p.add_argument("--name", default=None, help="the model name clients send (default: the run id)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-tokens", type=int, default=512, help="largest max_tokens a request may ask (default 512)")
    p.add_argument("--max-prompt-bytes", type=int, default=16_384, help="longest prompt in UTF-8 bytes")
    add_store_arg(p)
    add_tracking_arg(p)
    p.set_defaults(func=run)


def load_target(target: str, args: argparse.Namespace):  # noqa: ANN201 - (Bundle, default name)
    """A Bundle and its default model name from a store run, an MLflow URI, or a model folder."""
    from nightshift.orchestrator.serving.bundle import Bundle, bundle_in, load_bundle

    if target.startswith(MLFLOW_SCHEMES):
        import mlflow
        import mlflow.artifacts

        from nightshift.orchestrator.tracking.uri import is_disabled, resolve_tracking_uri

        uri = resolve_tracking_uri(args.tracking_uri, open_store(args))
        if uri is None or is_disabled(uri):
            raise UserError(f"{target} is an MLflow URI; give --tracking-uri (or set MLFLOW_TRACKING_URI)")
        folder = tempfile.mkdtemp(prefix="nightshift-serve-")
        # MLflow resolves `models:/` (what runs:/<id>/model points to) with its process-wide URIs only;
        # this process serves one model, so setting them here is harmless.
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=target, dst_path=folder, tracking_uri=uri,
                                                        registry_uri=uri)
        except Exception as exc:  # noqa: BLE001 - MlflowException, HTTP errors: one line either way
            raise UserError(f"cannot fetch {target} from {uri}: {(str(exc).splitlines() or [''])[0][:300]}") from None
        bundle = load_bundle(*bundle_in(local))
        return bundle, bundle.config.run_id
    if os.path.isdir(target):
        bundle = load_bundle(*bundle_in(target))
        return bundle, bundle.config.run_id
    from nightshift.orchestrator.runs.loading import load_run

    loaded = load_run(open_store(args), target, step=args.step)
    return Bundle(model=loaded.model, tokenizer=loaded.tokenizer, config=loaded.run.config, step=loaded.step), target


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from nightshift.orchestrator.commands.ui import _port_free
    from nightshift.orchestrator.serving.server import Limits, build_app

    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port} is not a port number (1-65535)")
    if args.max_tokens < 1 or args.max_prompt_bytes < 1:
        raise UserError(f"--max-tokens {args.max_tokens} / --max-prompt-bytes {args.max_prompt_bytes}: must be >= 1")
    if not _port_free(args.host, args.port):
        raise UserError(f"port {args.port} on {args.host} is in use; pick another with --port")
    bundle, name = load_target(args.run, args)
    name = args.name or name
    app = build_app(bundle, name, Limits(max_tokens=args.max_tokens, max_prompt_bytes=args.max_prompt_bytes))
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"serving {name} ({bundle.label}, step {bundle.step}) on http://{shown}:{args.port}/v1 "
          f"(Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0

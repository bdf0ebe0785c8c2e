"""`nightshift ui`: the MLflow UI on this project's runs (the embedded sqlite store by default).

    nightshift ui                      # http://127.0.0.1:5000 on ./.nightshift/mlflow.db
    nightshift ui --store /data/ns --port 5050
    nightshift ui --tracking-uri sqlite:///runs/mlflow.db

Binds 127.0.0.1 unless `--host` says otherwise. With an http(s) tracking URI
there is nothing to start: the server already is the UI, and its URL is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from nightshift.orchestrator.commands.common import add_store_arg
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.tracking.factory import (
    ARTIFACTS_DIR,
    check_tracking_uri,
    default_artifact_root,
    open_store,
)
from nightshift.orchestrator.tracking.uri import is_disabled, resolve_tracking_uri

READY_TIMEOUT_S = 180.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ui", help="open the MLflow UI on this project's runs",
        description="Start `mlflow server` on the project's tracking store and print its URL; Ctrl-C stops it.")
    add_store_arg(parser)
    parser.add_argument("--tracking-uri", default=None, help="tracking store to show instead of "
                        "$MLFLOW_TRACKING_URI or the store's DB (sqlite:///path/mlflow.db, postgresql://...; "
                        "http(s):// just prints the URL)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000)")
    parser.add_argument("--allowed-hosts", default=None,
                        help="Host headers to accept when serving beyond localhost (passed to mlflow server)")
    parser.set_defaults(func=run)


def server_command(uri: str, artifacts: str | None, host: str, port: int,
                   allowed_hosts: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--host", host, "--port", str(port), "--workers", "1"]
    if artifacts:
        cmd += ["--artifacts-destination", artifacts]
    if allowed_hosts:
        cmd += ["--allowed-hosts", allowed_hosts]
    return cmd


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is not "in use"
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _wait_ready(url: str, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return True
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.3)
    return False


def _stop(proc: subprocess.Popen) -> None:
    """Stop mlflow and the uvicorn worker it spawned (they share the session we gave them)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the UI the way Ctrl-C does: server first, then us


def run(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    uri = resolve_tracking_uri(args.tracking_uri, store)  # --tracking-uri > $MLFLOW_TRACKING_URI > the store's DB
    if uri and uri.startswith(("http://", "https://")):
        print(f"MLflow UI: {uri} (a tracking server is its own UI; nothing to start)")
        return 0
    if uri is None or is_disabled(uri):
        raise UserError(f"store {store.url} is not local, so it has no embedded tracking DB; "
                        "pass --tracking-uri (sqlite:///path/mlflow.db or the server's http URL)")
    check_tracking_uri(uri)
    artifacts = default_artifact_root(uri, store) or store.uri(ARTIFACTS_DIR)
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port} is not a port number (1-65535)")
    if not _port_free(args.host, args.port):
        raise UserError(f"port {args.port} on {args.host} is in use; pick another with --port")
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    url = f"http://{shown_host}:{args.port}"
    # MLflow's GenAI job runner is an extra process nightshift never uses; without it the server
    # starts and stops in seconds. An explicit setting in the environment still wins.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_ENABLE_TELEMETRY": "false", **os.environ}
    proc = subprocess.Popen(server_command(uri, artifacts, args.host, args.port, args.allowed_hosts),
                            start_new_session=True, env=env)
    previous = None
    with contextlib.suppress(ValueError):  # signal handlers only exist in the main thread
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if not _wait_ready(url, proc):
            _stop(proc)
            raise UserError(f"mlflow server on {url} did not start (exit code {proc.returncode}); see its output above")
        print(f"MLflow UI: {url} (tracking store {uri}; Ctrl-C stops it)", flush=True)
        return proc.wait() if proc.returncode is None else proc.returncode
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(proc)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

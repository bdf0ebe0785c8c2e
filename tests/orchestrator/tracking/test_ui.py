"""`nightshift ui` serves the MLflow UI on the store's tracking DB, on loopback, and stops cleanly."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from nightshift.orchestrator.tracking import build_tracker
from nightshift.pipelines.store import Store
from tests.helpers.paths import ROOT
from tests.helpers.servers import free_port
from tests.helpers.tracking import FAST


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "nightshift.orchestrator.cli", *args]


def _lines(proc: subprocess.Popen) -> "queue.Queue[str]":
    out: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [out.put(line) for line in proc.stdout], daemon=True).start()
    return out


def _wait_line(lines: "queue.Queue[str]", prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(f"no line starting with {prefix!r} within {timeout}s")


def _connectable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.mlflow
@pytest.mark.slow
def test_ui_serves_the_store_runs_and_stops(store: Store) -> None:
    tracker = build_tracker(None, store, rank=0, **FAST)
    run_id = tracker.start("ui/key", "ui-run", "ui experiment", {}, {"lr": 0.1})
    tracker.log_metrics({"loss": 1.0}, 1)
    tracker.finish()

    port = free_port()
    proc = subprocess.Popen(_cli("ui", "--store", store.url, "--port", str(port)), cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        line = _wait_line(_lines(proc), "MLflow UI:", timeout=180)
        url = f"http://127.0.0.1:{port}"
        assert line.startswith(f"MLflow UI: {url} ") and "mlflow.db" in line
        with urllib.request.urlopen(f"{url}/health", timeout=10) as resp:
            assert resp.read().decode().strip() == "OK"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert "mlflow" in resp.read().decode().lower()
        experiments = json.load(urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/search?max_results=50"))
        ids = [e["experiment_id"] for e in experiments["experiments"] if e["name"] == "ui experiment"]
        request = urllib.request.Request(f"{url}/api/2.0/mlflow/runs/search",
                                         data=json.dumps({"experiment_ids": ids}).encode(),
                                         headers={"Content-Type": "application/json"})
        runs = json.load(urllib.request.urlopen(request, timeout=10))["runs"]
        assert [r["info"]["run_id"] for r in runs] == [run_id]  # the UI reads the DB the tracker wrote
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0
    assert not _connectable(port)  # the server (and its worker) went away with the command


def test_ui_refuses_a_busy_port_in_one_line(store: Store) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subprocess.run(_cli("ui", "--store", store.url, "--port", str(port)), cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"nightshift: error: port {port} on 127.0.0.1 is in use; pick another with --port"


def test_ui_with_a_server_uri_only_prints_it() -> None:
    proc = subprocess.run(_cli("ui", "--tracking-uri", "http://127.0.0.1:5999"), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("MLflow UI: http://127.0.0.1:5999")

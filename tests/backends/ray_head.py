"""A real `ray start --head` cluster on 127.0.0.1 for job-submission tests, and only ours to stop.

`ray stop` would stop every Ray on the machine (other engineers' too), so the
head runs with `--block` under this process: stopping it is SIGTERM to that
process, then SIGKILL to whatever of *its* descendants is left, by pid.
Every port is chosen free (two clusters on one machine must not share the
fixed defaults), and the temp dir is short (unix socket paths are limited).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.backends.helpers import short_tmp
from tests.backends.procs import alive, descendants
from tests.helpers.servers import free_port, wait_http

VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class RayHead:
    address: str  # GCS host:port, what `ray.init(address=...)` takes
    dashboard: str  # http://127.0.0.1:PORT, what `ray job submit --address` takes
    env: dict[str, str]  # the environment to run `ray job ...` commands with
    log: Path


def ray_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # `python` in a job is this venv's
    env["RAY_AUTH_MODE"] = "disabled"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.pop("RAY_ADDRESS", None)
    return env


@contextmanager
def ray_head(log_dir: Path, *, num_cpus: int = 2, env: dict[str, str] | None = None) -> Iterator[RayHead]:
    port, dash = free_port(), free_port()
    ports = {f"--{name}": str(free_port()) for name in (
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
        "metrics-export-port", "ray-client-server-port", "object-manager-port", "node-manager-port")}
    temp_dir = short_tmp("nshead")
    log = log_dir / "ray-head.log"
    full_env = ray_env(env)
    cmd = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
           "--port", str(port), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
           "--include-dashboard", "true", "--num-cpus", str(num_cpus), "--temp-dir", temp_dir,
           "--disable-usage-stats", *[x for kv in ports.items() for x in kv]]
    log_file = open(log, "ab")  # noqa: SIM115 - closed below, after the head is gone
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
    dashboard = f"http://127.0.0.1:{dash}"
    try:
        wait_http(f"{dashboard}/api/version", timeout=180, proc=proc)
        yield RayHead(address=f"127.0.0.1:{port}", dashboard=dashboard, env=full_env, log=log)
    finally:
        _stop(proc)
        log_file.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    ours = descendants(proc.pid)  # before the parent goes: orphans are re-parented away from it
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    deadline = time.time() + 15
    while time.time() < deadline and any(alive(pid) for pid in ours):
        time.sleep(0.3)
    for pid in ours:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

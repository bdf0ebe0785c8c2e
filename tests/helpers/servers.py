"""Real servers on 127.0.0.1 for tests: an S3 API (moto) and an MLflow tracking server.

Nothing here is a mock of our own code: the tests talk to these over HTTP
exactly as users talk to MinIO/S3 and a deployed `mlflow server`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.3)
    raise RuntimeError(f"server at {url} did not come up in {timeout}s")


def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM, then SIGKILL if it lingers (a loaded 2-core box can take a while)."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class S3Server:
    endpoint: str
    env: dict[str, str]

    def make_bucket(self, name: str) -> str:
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket=name)
        return f"s3://{name}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server on loopback; its env points boto3/s3fs/MLflow at it."""
    port = free_port()
    proc = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(endpoint, proc=proc)
        yield S3Server(endpoint=endpoint, env={
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "MLFLOW_S3_ENDPOINT_URL": endpoint,
        })
    finally:
        stop_process(proc)


@pytest.fixture()
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Point this test's process (and its children) at the moto server."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    return s3_server


@dataclass
class MlflowServer:
    uri: str
    proc: subprocess.Popen
    artifact_root: str
    backend_db: Path
    port: int


def start_mlflow_server(tmp: Path, s3: S3Server, bucket: str, port: int | None = None) -> MlflowServer:
    """`mlflow server` with a sqlite backend and S3 (moto) artifact destination."""
    port = port or free_port()
    artifacts = f"{bucket}/mlflow-artifacts"
    db = tmp / "mlflow.db"
    env = {**os.environ, **s3.env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        [str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{db}", "--artifacts-destination", artifacts,
         "--workers", "1"],
        stdout=open(tmp / f"mlflow-{port}.log", "ab"), stderr=subprocess.STDOUT, env=env,  # noqa: SIM115 - the server writes it for its life
    )
    uri = f"http://127.0.0.1:{port}"
    wait_http(f"{uri}/health", timeout=120, proc=proc)
    return MlflowServer(uri=uri, proc=proc, artifact_root=artifacts, backend_db=db, port=port)


@pytest.fixture(scope="session")
def mlflow_server(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    tmp = tmp_path_factory.mktemp("mlflow-server")
    bucket = s3_server.make_bucket("mlflow")
    server = start_mlflow_server(tmp, s3_server, bucket)
    try:
        yield server
    finally:
        stop_process(server.proc)

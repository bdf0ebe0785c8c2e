"""S3 trouble is one line before any work: no credentials, wrong ones, an unreachable endpoint, no bucket."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import nightshift
from tests.fixtures.servers import VENV_BIN, free_port, stop_process, wait_http

pytestmark = [pytest.mark.s3]
NO_PROFILE = {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
              "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def strict_s3() -> Iterator[str]:
    """A moto S3 server that checks credentials (only keys it issued are valid)."""
    port = free_port()
    proc = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{endpoint}/moto-api/", proc=proc)  # the one page that answers without credentials
        yield endpoint
    finally:
        stop_process(proc)


def _one_line(args: list[str], env: dict[str, str]) -> str:
    proc = nightshift(*args, env=env, check=False, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[0]


def _train(url: str) -> list[str]:
    return ["train", "--dataset", "local-pg19-200kb-bytes-0123456789abcdef", "--model", "transformer:debug",
            "--store", url, "--tracking-uri", "none", "--no-progress"]


def test_missing_credentials(s3_server) -> None:  # noqa: ANN001 - fixture
    bucket = s3_server.make_bucket("creds-missing")
    env = {**NO_PROFILE, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_ENDPOINT_URL": s3_server.endpoint}
    line = _one_line(_train(f"{bucket}/store"), env)
    assert "no S3 credentials" in line and "AWS_ACCESS_KEY_ID" in line


def test_wrong_credentials(strict_s3: str, pg19_dir: Path) -> None:
    env = {**NO_PROFILE, "AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG1", "AWS_SECRET_ACCESS_KEY": "nope",
           "AWS_ENDPOINT_URL": strict_s3, "AWS_DEFAULT_REGION": "us-east-1"}
    line = _one_line(["prepare", "--source", f"local:{pg19_dir}", "--store", "s3://any-bucket/store"], env)
    assert "rejected the credentials" in line and "InvalidAccessKeyId" in line


def test_unreachable_endpoint() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {**NO_PROFILE, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    line = _one_line(_train("s3://some-bucket/store"), env)
    assert "unreachable" in line and endpoint in line


def test_missing_bucket(s3_server, pg19_dir: Path) -> None:  # noqa: ANN001 - fixture
    line = _one_line(["prepare", "--source", f"local:{pg19_dir}", "--store", "s3://no-such-bucket-here/store"],
                     s3_server.env)
    assert "bucket 'no-such-bucket-here' does not exist" in line and s3_server.endpoint in line

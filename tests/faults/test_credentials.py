"""S3 trouble is one line before any work: no credentials, wrong ones, an unreachable endpoint, no bucket."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.helpers import Cli
from tests.helpers.servers import VENV_BIN, free_port, stop_process, wait_http

pytestmark = [pytest.mark.s3]


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


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set this test's AWS environment from scratch (no profile files, no instance metadata)."""
    def setenv(**values: str) -> None:
        for key in [k for k in os.environ if k.startswith("AWS_")]:
            monkeypatch.delenv(key)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for key, value in values.items():
            monkeypatch.setenv(key, value)

    return setenv


def _one_line(result: Cli) -> str:
    lines = result.err.strip().splitlines()
    assert result.code == 2 and len(lines) == 1 and lines[0].startswith("nightshift: error:"), result.err
    return lines[0]


def _train(url: str) -> list[str]:
    return ["train", "--dataset", "local-pg19-200kb-bytes-0123456789abcdef", "--model", "transformer:debug",
            "--store", url, "--tracking-uri", "none", "--no-progress"]


def test_missing_credentials(s3_server, aws, cli) -> None:
    bucket = s3_server.make_bucket("creds-missing")
    aws(AWS_ENDPOINT_URL=s3_server.endpoint)
    line = _one_line(cli(*_train(f"{bucket}/store")))
    assert "no S3 credentials" in line and "AWS_ACCESS_KEY_ID" in line


def test_wrong_credentials(strict_s3: str, pg19_dir: Path, aws, cli) -> None:
    aws(AWS_ACCESS_KEY_ID="AKIAWRONGWRONGWRONG1", AWS_SECRET_ACCESS_KEY="nope", AWS_ENDPOINT_URL=strict_s3)
    line = _one_line(cli("prepare", "--source", f"local:{pg19_dir}", "--store", "s3://any-bucket/store"))
    assert "rejected the credentials" in line and "InvalidAccessKeyId" in line


def test_unreachable_endpoint(aws, cli) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    aws(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_ENDPOINT_URL=endpoint)
    line = _one_line(cli(*_train("s3://some-bucket/store")))
    assert "unreachable" in line and endpoint in line


def test_missing_bucket(s3_server, pg19_dir: Path, aws, cli) -> None:
    aws(**{k: v for k, v in s3_server.env.items() if k.startswith("AWS_")})
    line = _one_line(cli("prepare", "--source", f"local:{pg19_dir}", "--store", "s3://no-such-bucket-here/store"))
    assert "bucket 'no-such-bucket-here' does not exist" in line and s3_server.endpoint in line

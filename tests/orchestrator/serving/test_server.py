"""`nightshift serve` on loopback, driven by the real `openai` client and by curl.

The served model is the session's tracked run, fetched by its MLflow URI
(`runs:/<id>/model`) from the server and its S3 bucket, as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT
from tests.helpers.servers import free_port, stop_process, wait_http
from tests.orchestrator.serving.helpers import LoggedRun

pytestmark = [pytest.mark.mlflow, pytest.mark.slow]
NAME = "tiny"
CURL = shutil.which("curl")


@dataclass
class Live:
    url: str
    banner: str


@pytest.fixture(scope="module")
def live(logged_run: LoggedRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nightshift.orchestrator.cli", "serve", f"runs:/{logged_run.mlflow_run_id}/model",
         "--tracking-uri", logged_run.uri, "--port", str(port), "--name", NAME, "--max-tokens", "64",
         "--max-prompt-bytes", "2000"],
        cwd=ROOT, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env={**os.environ, **logged_run.env})  # noqa: SIM115 - the server writes it for its life
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", timeout=180, proc=proc)
        yield Live(url=url, banner=log.read_text())
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def client(live: Live):
    import openai

    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_openai_client_completes_lists_models_and_a_seed_repeats_the_sample(live: Live, client) -> None:
    assert "http://127.0.0.1:" in live.banner  # loopback unless --host says otherwise
    assert [m.id for m in client.models.list().data] == [NAME]
    done = client.completions.create(model=NAME, prompt="Once upon a time", max_tokens=10, n=2, seed=7,
                                     temperature=0.9, extra_body={"top_k": 40})  # top_k: not in OpenAI's API
    assert done.object == "text_completion" and [c.index for c in done.choices] == [0, 1]
    assert all(c.finish_reason in ("length", "stop") for c in done.choices)
    assert done.usage.completion_tokens <= 20 and done.usage.prompt_tokens == len("Once upon a time")  # bytes
    again = client.completions.create(model=NAME, prompt="Once upon a time", max_tokens=10, n=2, seed=7,
                                      temperature=0.9, extra_body={"top_k": 40})
    assert [c.text for c in again.choices] == [c.text for c in done.choices]
    nucleus = client.completions.create(model=NAME, prompt=["a", "b"], max_tokens=4, top_p=0.5, seed=1)
    assert [c.index for c in nucleus.choices] == [0, 1]


def test_openai_client_streams_the_same_text_as_one_response(client) -> None:
    whole = client.completions.create(model=NAME, prompt="The old man", max_tokens=24, seed=3)
    chunks = list(client.completions.create(model=NAME, prompt="The old man", max_tokens=24, seed=3, stream=True))
    assert len(chunks) >= 2  # it really streams: several events, not one
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


def test_stop_strings_end_the_completion_before_them(client) -> None:
    free = client.completions.create(model=NAME, prompt="It was", max_tokens=40, seed=11)
    text = free.choices[0].text
    stop = text[5:7] if len(text) > 7 else text[-1:]
    cut = client.completions.create(model=NAME, prompt="It was", max_tokens=40, seed=11, stop=[stop])
    assert cut.choices[0].finish_reason == "stop" and cut.choices[0].text == text[: text.find(stop)]


def test_openai_client_sees_4xx_errors_in_openai_shape(client) -> None:
    import openai

    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="gpt-4", prompt="x")
    assert caught.value.body["code"] == "model_not_found" and NAME in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model=NAME, prompt="x", max_tokens=65)
    assert caught.value.body["param"] == "max_tokens" and "1..64" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model=NAME, prompt="x" * 2001)
    assert caught.value.body["code"] == "context_length_exceeded"


def test_concurrent_requests_are_served_one_at_a_time_with_the_same_answers(client) -> None:
    def ask(seed: int) -> str:
        return client.completions.create(model=NAME, prompt="The sea", max_tokens=8, seed=seed).choices[0].text

    alone = [ask(s) for s in range(4)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(ask, range(4)))
    assert together == alone


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
@pytest.mark.parametrize("body, status, where", [
    (b'{"model": "tiny", "prompt": "\xff\xfe not utf-8"}', 400, None),
    (b'{"model": "tiny", "prompt": "\\ud800"}', 400, "prompt"),
    (b'{"model": "tiny", "prompt": [1, 2, 3]}', 400, "prompt"),
    (b'{"model": "tiny", "prompt": "x", "temperature": 9}', 400, "temperature"),
    (b'{"model": "tiny", "prompt": "x", "n": 0}', 400, "n"),
    (b'{"prompt": "x"}', 400, "model"),
    (b'not json', 400, None),
])
def test_curl_bad_requests_get_openai_json_errors_never_a_500(live: Live, body: bytes, status: int,
                                                              where: str | None, tmp_path: Path) -> None:
    payload = tmp_path / "body.json"
    payload.write_bytes(body)
    out = subprocess.run([CURL, "-s", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
                          "--data-binary", f"@{payload}", f"{live.url}/v1/completions"],
                         capture_output=True, timeout=60, check=True).stdout.decode()
    text, code = out.rsplit("\n", 1)
    assert int(code) == status, text
    error = json.loads(text)["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == where and error["message"]
    assert "Traceback" not in text


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_health_and_a_completion(live: Live) -> None:
    health = json.loads(subprocess.run([CURL, "-s", f"{live.url}/health"], capture_output=True, check=True,
                                       timeout=60).stdout)
    assert health["status"] == "ok" and health["model"] == NAME and health["family"] == "transformer"
    out = subprocess.run([CURL, "-s", f"{live.url}/v1/completions", "-H", "Content-Type: application/json",
                          "-d", json.dumps({"model": NAME, "prompt": "Once", "max_tokens": 3, "seed": 0})],
                         capture_output=True, check=True, timeout=60).stdout
    assert json.loads(out)["choices"][0]["finish_reason"] in ("length", "stop")

"""Params are flattened, size-limited and secret-free before any tracker sees them."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nightshift.orchestrator.tracking.sanitize import (
    MAX_KEY_LENGTH,
    MAX_PARAM_VALUE_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    REDACTED,
    flatten,
    is_secret_env,
    is_secret_key,
    metric_values,
    redact_text,
    sanitize_params,
    sanitize_structure,
    sanitize_tags,
)

HF = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123"
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
COMMIT = "0f3c2a9e4b1d8c7f6a5e4d3c2b1a09f8e7d6c5b4"


@dataclasses.dataclass(frozen=True)
class _Inner:
    d_model: int = 64
    betas: tuple[float, float] = (0.9, 0.95)


def test_flatten_uses_dotted_keys_and_keeps_lists_whole() -> None:
    flat = flatten({"model": {"family": "holo", "cfg": _Inner()}, "train": {"lr": 3e-4, "compile": False},
                    "empty": {}, "none": None})
    assert flat == {"model.family": "holo", "model.cfg.d_model": "64", "model.cfg.betas": "[0.9, 0.95]",
                    "train.lr": "0.0003", "train.compile": "false", "empty": "{}", "none": "null"}


@pytest.mark.parametrize("key", [
    "AWS_SECRET_ACCESS_KEY", "aws_access_key_id", "AWS_SESSION_TOKEN", "hf_token", "HF_TOKEN",
    "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "Authorization", "db.password", "openai_api_key",
    "apiKey", "s3.credentials", "client_secret", "hfToken", "private_key", "MODAL_TOKEN_SECRET", "cookie",
])
def test_secret_keys_are_recognised(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", [
    "tokenizer", "model.tokenizer.name", "max_tokens", "sample_tokens", "tokens_per_step", "run_key",
    "dataset.key_column", "author", "monkey", "nightshift.run_key", "keyword",
])
def test_ordinary_keys_are_not_secrets(key: str) -> None:
    assert not is_secret_key(key)


def test_params_lose_secret_values_by_key_and_by_shape() -> None:
    params = sanitize_params({
        "env": {"AWS_SECRET_ACCESS_KEY": "plainvalue123", "aws_access_key_id": AWS_ID, "HF_TOKEN": HF},
        "tracking": {"uri": "http://alice:s3cr3tpass@mlflow.internal:5000", "headers": {"Authorization": "Bearer x"}},
        "note": f"pushed with {HF} and {AWS_ID}",
        "innocent_name": AWS_SECRET,
        "model": {"tokenizer": "gpt2", "d_model": 64},
        "git_commit": COMMIT,
    })
    assert params["env.AWS_SECRET_ACCESS_KEY"] == REDACTED
    assert params["env.aws_access_key_id"] == REDACTED
    assert params["env.HF_TOKEN"] == REDACTED
    assert params["tracking.headers.Authorization"] == REDACTED
    assert params["tracking.uri"] == f"http://alice:{REDACTED}@mlflow.internal:5000"
    assert params["note"] == f"pushed with {REDACTED} and {REDACTED}"
    assert params["innocent_name"] == REDACTED
    assert params["model.tokenizer"] == "gpt2" and params["model.d_model"] == "64"
    assert params["git_commit"] == COMMIT  # a hex commit is not an AWS secret
    blob = repr(params)
    for secret in ("plainvalue123", AWS_ID, HF, "s3cr3tpass", AWS_SECRET):
        assert secret not in blob


def test_values_of_secret_environment_variables_are_masked_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "opaque-value-9f8e7d")
    tags = sanitize_tags({"cmd": "curl -H x-auth:opaque-value-9f8e7d https://api", "n": "1"})
    assert tags == {"cmd": f"curl -H x-auth:{REDACTED} https://api", "n": "1"}


def test_the_current_directory_is_not_a_secret_but_credential_variables_are(monkeypatch: pytest.MonkeyPatch) -> None:
    workdir = "/some/dir/of/the/researcher"
    monkeypatch.setenv("PWD", workdir)
    monkeypatch.setenv("OLDPWD", "/some/earlier/place")
    monkeypatch.setenv("HOME", "/home/researcher")
    monkeypatch.setenv("NIGHTSHIFT_CACHE_DIR", "/var/cache/nightshift")
    secrets = {"AWS_SECRET_ACCESS_KEY": "plain-aws-secret-1", "DB_PASSWORD": "hunter2hunter2",
               "MLFLOW_TRACKING_PASSWORD": "mlflow-pass-77", "MYSQL_PWD": "mysql-pass-99"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    run_uri = f"{workdir}/store/runs/ds/m/r"
    tags = sanitize_tags({"run.uri": run_uri, "home": "/home/researcher/x", "cache": "/var/cache/nightshift/a",
                          "leak": " ".join(secrets.values())})
    assert tags["run.uri"] == run_uri and tags["home"] == "/home/researcher/x"
    assert tags["cache"] == "/var/cache/nightshift/a"
    assert tags["leak"] == " ".join([REDACTED] * len(secrets))
    assert redact_text(f"result in {workdir}/store/result.json") == f"result in {workdir}/store/result.json"
    assert sanitize_structure({"checkpoint": f"{workdir}/ckpt.pt"}) == {"checkpoint": f"{workdir}/ckpt.pt"}
    assert not any(is_secret_env(n) for n in ("PWD", "OLDPWD", "HOME", "USER", "SHELL", "PATH", "PYTHONPATH",
                                              "LD_LIBRARY_PATH", "TIKTOKEN_CACHE_DIR", "RAY_AUTH_MODE"))
    assert all(is_secret_env(n) for n in (*secrets, "HF_TOKEN", "OPENAI_API_KEY", "MODAL_TOKEN_SECRET",
                                          "GITHUB_PAT_CREDENTIAL", "MYAPIKEY"))


def test_free_text_and_structures_are_redacted() -> None:
    text = ("Authorization: Bearer abcdef0123456789abcdef\nlogin password=hunter22 ok\n"
            "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----")
    out = redact_text(text)
    for secret in ("abcdef0123456789abcdef", "hunter22", "MIIB"):
        assert secret not in out
    assert redact_text("a basic understanding of the token economy") == "a basic understanding of the token economy"
    nested = sanitize_structure({"train": {"lr": 0.1}, "secrets": {"hf_token": HF}, "list": [f"x {AWS_ID}"]})
    assert nested == {"train": {"lr": 0.1}, "secrets": {"hf_token": REDACTED}, "list": [f"x {REDACTED}"]}


def test_limits_match_mlflow_and_long_values_are_truncated() -> None:
    from mlflow.utils import validation

    assert (MAX_KEY_LENGTH, MAX_PARAM_VALUE_LENGTH, MAX_TAG_VALUE_LENGTH) == (
        validation.MAX_ENTITY_KEY_LENGTH, validation.MAX_PARAM_VAL_LENGTH, validation.MAX_TAG_VAL_LENGTH)
    params = sanitize_params({"k" * 400: "v", "long": "x" * 10_000, "bad key!": 1})
    assert all(len(k) <= MAX_KEY_LENGTH for k in params)
    assert len(params["long"]) == MAX_PARAM_VALUE_LENGTH and params["long"].endswith("[truncated]")
    assert params["bad key_"] == "1"
    assert len(sanitize_tags({"t": "y" * 9000})["t"]) == MAX_TAG_VALUE_LENGTH


def test_metric_values_coerce_scalars_and_drop_non_numbers() -> None:
    import numpy as np
    import torch

    assert metric_values({"a": torch.tensor(1.5), "b": np.float32(2.0), "c": 3, "d": "x", "e": None}) == \
        {"a": 1.5, "b": 2.0, "c": 3.0}


@settings(max_examples=60, deadline=None)
@given(prefix=st.text(max_size=40), suffix=st.text(max_size=40),
       token=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=30,
                     max_size=40))
def test_an_embedded_hf_token_never_survives(prefix: str, suffix: str, token: str) -> None:
    secret = f"hf_{token}"
    assert secret not in redact_text(f"{prefix} {secret} {suffix}")

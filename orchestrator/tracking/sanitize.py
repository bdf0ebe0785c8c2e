"""What may leave the process for a tracking server: flattened, redacted, size-limited values.

Every tracker backend passes params, tags, metric keys and free text through
here, so a secret can never reach MLflow (or a JSONL history) by any path:
keys that name a secret (`aws_secret_access_key`, `hf_token`, `password`,
`Authorization`...) keep their key but lose their value, and values that look
like a credential (AWS key ids, HF/GitHub/OpenAI tokens, JWTs, bearer headers,
passwords inside URLs, or the literal value of an environment variable whose
name says credential: `is_secret_env`) are masked wherever they appear.

The length limits mirror `mlflow.utils.validation` (a test pins them) so a long
config value is truncated here instead of rejected by the server.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"
MAX_KEY_LENGTH = 250  # mlflow MAX_ENTITY_KEY_LENGTH
MAX_PARAM_VALUE_LENGTH = 6000  # mlflow MAX_PARAM_VAL_LENGTH
MAX_TAG_VALUE_LENGTH = 8000  # mlflow MAX_TAG_VAL_LENGTH
_TRUNCATED = "...[truncated]"
_MIN_ENV_SECRET_LENGTH = 8  # shorter env values ("testing", "1") would mask ordinary text

# Words (after splitting a key on separators and camelCase) that make the key a secret.
_SECRET_WORDS = frozenset({
    "secret", "secrets", "password", "passwd", "passphrase", "pwd", "token", "apikey", "authorization",
    "credential", "credentials", "cookie", "privatekey", "sessionkey", "accesskey", "secretkey",
    "clientsecret", "sas", "signature",
})
# Adjacent word pairs that make the key a secret (`aws_access_key_id`, `api_key`, `private-key`).
_SECRET_PAIRS = frozenset({
    ("access", "key"), ("api", "key"), ("private", "key"), ("secret", "key"), ("session", "key"),
    ("account", "key"), ("auth", "header"), ("auth", "key"), ("signing", "key"), ("encryption", "key"),
})
# Environment variables: names that say credential (a word of the name, or glued into one: `MYAPIKEY`) ...
_ENV_SECRET_WORDS = frozenset({
    "password", "passwd", "passphrase", "pwd", "secret", "secrets", "token", "tokens", "credential",
    "credentials", "key", "keys", "apikey", "accesskey", "secretkey", "privatekey", "sessionkey", "cookie",
})
_ENV_SECRET_PARTS = ("password", "passwd", "secret", "apikey", "accesskey", "privatekey", "authtoken", "credential")
# ... except the shell's own variables and path-like ones, whose values are paths (`MYSQL_PWD` is a secret; `PWD`,
# the current directory, is not).
_ENV_NEVER_SECRET = frozenset({
    "PWD", "OLDPWD", "HOME", "USER", "LOGNAME", "USERNAME", "SHELL", "PATH", "TMPDIR", "TEMP", "TMP", "LANG",
    "TERM", "HOSTNAME", "PS1", "VIRTUAL_ENV", "CONDA_PREFIX",
})
_ENV_PATH_WORDS = frozenset({"path", "paths", "dir", "dirs", "home", "file", "prefix"})

_VALUE_PATTERNS = tuple(re.compile(p) for p in (
    r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bhf_[A-Za-z0-9]{20,}\b",  # Hugging Face tokens
    r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})\b",  # GitHub tokens
    r"\bsk-[A-Za-z0-9_-]{20,}",  # OpenAI-style keys
    r"\bxox[abprs]-[A-Za-z0-9-]{10,}",  # Slack tokens
    r"\b(?:ak|as)-[A-Za-z0-9]{20,}\b",  # Modal token ids / secrets
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",  # JWTs
    r"(?i)\bbearer\s+(?=[A-Za-z._~+/=-]*[0-9])[A-Za-z0-9._~+/=-]{16,}",  # Authorization: Bearer ...
    r"\bBasic\s+(?=[A-Za-z]*[0-9+/=])[A-Za-z0-9+/]{12,}={0,2}",  # Authorization: Basic base64
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
    r"(?i)\b(?:password|passwd|pwd|secret|token|api_?key|access_?key)\s*[=:]\s*[^\s&;,'\"]+",  # k=v in text
))
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)(?P<pw>[^/\s@]+)(?P<at>@)")
# A 40-character mixed-case base64 string is an AWS secret key's shape; a hex commit is not.
_AWS_SECRET_SHAPE = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_BAD_KEY_CHARS = re.compile(r"[^\w./\- :]")


def key_words(key: str) -> list[str]:
    """`AWS_SECRET_ACCESS_KEY` -> [aws, secret, access, key]; `hfToken` -> [hf, token]."""
    words: list[str] = []
    for part in _WORD_SPLIT.split(key):
        words.extend(w.lower() for w in _CAMEL.split(part) if w)
    return words


def is_secret_key(key: str) -> bool:
    """True for keys that name a credential; `tokenizer`, `max_tokens`, `run_key` are not secrets."""
    words = key_words(key)
    if any(w in _SECRET_WORDS for w in words):
        return True
    joined = "".join(words)
    if any(s in joined for s in ("secretaccesskey", "accesskeyid", "apikey", "authtoken", "privatekey")):
        return True
    return any(pair in _SECRET_PAIRS for pair in zip(words, words[1:]))


def is_secret_env(name: str) -> bool:
    """True for an environment variable whose value is a credential (`DB_PASSWORD`, `HF_TOKEN`, `AWS_SECRET_...`).

    Stricter than `is_secret_key`, because every occurrence of such a value is masked in all text: `PWD` is
    the current directory (masking it turned every recorded path into `[redacted]/store/...`), and the
    shell's own variables and search paths (`HOME`, `PATH`, `*_DIR`, `*_PATH`) hold paths, never secrets.
    """
    if name.upper() in _ENV_NEVER_SECRET:
        return False
    words = key_words(name)
    if not words or words[-1] in _ENV_PATH_WORDS:
        return False
    if any(w in _ENV_SECRET_WORDS for w in words):
        return True
    joined = "".join(words)
    return any(s in joined for s in _ENV_SECRET_PARTS)


def _env_secret_values() -> list[str]:
    """Values of secret-named environment variables, longest first (read at call time: envs change)."""
    values = {v for k, v in os.environ.items() if v and len(v) >= _MIN_ENV_SECRET_LENGTH and is_secret_env(k)}
    return sorted(values, key=len, reverse=True)


def _looks_like_aws_secret(candidate: str) -> bool:
    return (any(c.isupper() for c in candidate) and any(c.islower() for c in candidate)
            and any(c.isdigit() for c in candidate))


def redact_text(text: str, env_secrets: Iterable[str] | None = None) -> str:
    """Mask every credential-shaped substring of `text` (free text, a URL, a config value)."""
    for secret in _env_secret_values() if env_secrets is None else env_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}{m['at']}", text)
    for pattern in _VALUE_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return _AWS_SECRET_SHAPE.sub(lambda m: REDACTED if _looks_like_aws_secret(m[0]) else m[0], text)


def truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - len(_TRUNCATED)] + _TRUNCATED


def clean_key(key: str) -> str:
    """MLflow accepts letters, digits, `_ - . / : ` and spaces in names; anything else becomes `_`."""
    key = _BAD_KEY_CHARS.sub("_", str(key)).strip() or "_"
    return key[:MAX_KEY_LENGTH]


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value) if not (isinstance(value, float) and not math.isfinite(value)) else str(value)
    try:
        return json.dumps(_plain(value), sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def flatten(nested: Mapping[str, Any] | Any, prefix: str = "") -> dict[str, str]:
    """`{"model": {"d": 64}, "betas": [0.9, 0.95]}` -> `{"model.d": "64", "betas": "[0.9, 0.95]"}`.

    Dataclasses count as mappings; lists stay one JSON value (a list of 40
    layer sizes is one param, not 40).
    """
    plain = _plain(nested)
    out: dict[str, str] = {}
    if not isinstance(plain, dict):
        return {prefix or "value": _scalar(plain)}
    for key, value in plain.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, full))
        else:
            out[full] = _scalar(value if not isinstance(value, dict) else {})
    return out


def sanitize_pairs(pairs: Mapping[str, Any], value_limit: int) -> dict[str, str]:
    """Clean keys, redact secrets (by key and by value), truncate values: safe to send anywhere."""
    env_secrets = _env_secret_values()
    out: dict[str, str] = {}
    for key, value in pairs.items():
        key = clean_key(key)
        text = value if isinstance(value, str) else _scalar(value)
        text = REDACTED if is_secret_key(key) else redact_text(text, env_secrets)
        out[key] = truncate(text, value_limit)
    return out


def sanitize_params(params: Mapping[str, Any]) -> dict[str, str]:
    """A nested config -> flat, secret-free MLflow params."""
    return sanitize_pairs(flatten(params), MAX_PARAM_VALUE_LENGTH)


def sanitize_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    return sanitize_pairs(tags, MAX_TAG_VALUE_LENGTH)


def sanitize_structure(value: Any) -> Any:
    """Redact a nested JSON-like value in place of its secrets, keeping its shape (config artifacts)."""
    env_secrets = _env_secret_values()

    def walk(node: Any, key: str | None) -> Any:
        if key is not None and is_secret_key(key) and not isinstance(node, (dict, list)):
            return REDACTED
        if isinstance(node, dict):
            return {k: walk(v, str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, None) for v in node]
        if isinstance(node, str):
            return redact_text(node, env_secrets)
        return node

    return walk(_plain(value), None)


def metric_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Clean metric names and coerce values to float (tensors, numpy scalars); drop what is not a number."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            out[clean_key(key)] = float(value.item() if hasattr(value, "item") else value)
        except (TypeError, ValueError):
            continue
    return out

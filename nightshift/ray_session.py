"""The one way nightshift joins or starts Ray, and the settings every Ray worker is handed.

Policy, the same for the data pipeline's tokenizer actors, Ray Train runs and
sweep cells as Ray tasks:

1. A Ray already initialised in this process is reused (and never shut down here).
2. Else `address` or `$RAY_ADDRESS` (which `ray job submit` sets): join that
   cluster under its own auth mode (`RAY_AUTH_MODE` / `~/.ray/auth_token` are the user's).
3. Else start a private Ray on loopback, never another user's `ray start`
   cluster on this machine, with auth off (nothing else can reach it) and at
   least as many logical CPUs as the caller needs (oversubscribed if need be:
   asking for more CPUs than exist would hang, not fail).

Workers on other processes or nodes see none of the driver's environment
set after Ray started, so the settings they need (store credentials,
tokenizer files, MLflow) travel as `forwarded_env()`.

Below every layer (pipelines, models and orchestrator may import it); Ray is
imported only when a session is asked for.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

FORWARDED_ENV_PREFIXES = ("AWS_", "TIKTOKEN_", "NIGHTSHIFT_", "HF_", "FSSPEC_", "S3_", "MLFLOW_")


def forwarded_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's settings a Ray worker needs, plus `extra` (e.g. the launcher's git commit)."""
    return {**(extra or {}), **{k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}}


def connect(*, num_cpus: float = 1, address: str | None = None, runtime_env: dict[str, Any] | None = None,
            dashboard: bool = False, quiet: bool = False) -> bool:
    """Reuse, join or start Ray (the policy above); True when this call started it (the caller shuts it down).

    dashboard: start the local Ray's dashboard (Ray Train polls its state API).
    quiet: workers' output and Ray's own INFO lines stay out of this terminal.
    """
    import ray

    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"runtime_env": runtime_env} if runtime_env else {}
    if quiet:
        options |= {"log_to_driver": False, "logging_level": logging.WARNING}
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, **options)
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=dashboard,
             num_cpus=max(math.ceil(num_cpus), os.cpu_count() or 1), **options)
    return True


@contextmanager
def session(**kwargs: Any) -> Iterator[Any]:
    """`with session(num_cpus=4) as ray:` -- Ray for the block; shut down after only if the block started it."""
    import ray

    started = connect(**kwargs)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
